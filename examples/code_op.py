"""k nearest neighbours of a 3-D point cloud as one jt.code op, run on kiln and
checked against NumPy. Jittor 1.1's release note wrote this op as brute force
with the C++ standard library's nth_element over all n distances of a point
(tests/python/test_code.py runs that form); this one keeps each point's k
nearest so far, sorted, and a point enters only when it is nearer than the
k-th: after the first few candidates that is one comparison, so a point
costs n distances, not n distances and a selection over them.

    PYTHONPATH=python python3 examples/code_op.py [n] [k]

Prints whether the neighbours match NumPy's and the time per call."""
import sys
import time

import numpy as np

import kiln as jt


def knn(a, k):
    """Indices of the k nearest points of every point of a (n x 3), nearest
    first (a point is its own nearest)."""
    n = a.shape[0]
    if not 0 < k <= n:
        raise ValueError(f"knn: k={k} neighbours asked of {n} points (need 0 < k <= n)")
    return jt.code([n, k], "int32", [a],
        cpu_header="#include <vector>\n#include <cmath>",
        cpu_src="""
            using namespace std;
            auto n = out_shape0, k = out_shape1;
            const int block = 256;
            // the points are independent: spread them over the threads
            #pragma omp parallel
            {
                vector<float> best_d(k), d(block);   // per thread
                vector<int> best_j(k);
                #pragma omp for schedule(static)
                for (int i = 0; i < n; i++) {
                    fill(best_d.begin(), best_d.end(), INFINITY);
                    fill(best_j.begin(), best_j.end(), 0);
                    float xi = @in0(i,0), yi = @in0(i,1), zi = @in0(i,2);
                    for (int j0 = 0; j0 < n; j0 += block) {
                        int m = n - j0 < block ? n - j0 : block;
                        // a block of squared distances (vectorised) ...
                        for (int t = 0; t < m; t++) {
                            float dx = xi - @in0(j0+t,0), dy = yi - @in0(j0+t,1), dz = zi - @in0(j0+t,2);
                            d[t] = dx*dx + dy*dy + dz*dz;
                        }
                        // ... then the few nearer than the k-th so far go in, in order
                        for (int t = 0; t < m; t++) {
                            if (!(d[t] < best_d[k-1])) continue;
                            int p = k - 1;
                            for (; p > 0 && best_d[p-1] > d[t]; p--) {
                                best_d[p] = best_d[p-1];
                                best_j[p] = best_j[p-1];
                            }
                            best_d[p] = d[t];
                            best_j[p] = j0 + t;
                        }
                    }
                    for (int j = 0; j < k; j++)
                        @out(i, j) = best_j[j];
                }
            }
        """)


def check(points, idx, k):
    """The distances to the neighbours found equal NumPy's k smallest."""
    p = points.astype(np.float64)
    d = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    want = np.sort(d, 1)[:, :k]
    got = np.sort(np.take_along_axis(d, idx.astype(np.int64), 1), 1)
    return np.allclose(got, want, atol=1e-6)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    a = jt.random((n, 3))
    b = knn(a, k)                      # compiles once (cached on disk after)
    idx = b.numpy()
    ok = check(a.numpy(), idx, k)
    print(f"knn n={n} k={k}: output {b.shape} {b.dtype}; matches NumPy: {ok}")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        knn(a, k).sync()
        times.append(time.perf_counter() - t0)
    print(f"median time per call: {sorted(times)[2] * 1e3:.3f} ms")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
