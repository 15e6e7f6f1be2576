"""k nearest neighbours of a 3-D point cloud as one jt.code op: the example of
Jittor 1.1's release note (brute force, OpenMP over the points, the C++
standard library's nth_element), run on kiln and checked against NumPy.

    PYTHONPATH=python python3 examples/code_op.py [n] [k]

Prints whether the neighbours match NumPy's and the time per call."""
import sys
import time

import numpy as np

import kiln as jt


def knn(a, k):
    """Indices of the k nearest points of every point of a (n x 3), nearest
    first not guaranteed (nth_element only partitions)."""
    n = a.shape[0]
    return jt.code([n, k], "int32", [a],
        cpu_header="#include <algorithm>",
        cpu_src="""
            using namespace std;
            auto n = out_shape0, k = out_shape1;
            // the points are independent: spread them over the threads
            #pragma omp parallel for
            for (int i = 0; i < n; i++) {
                // (squared distance, index) of every point seen from point i
                vector<pair<float, int>> id(n);
                for (int j = 0; j < n; j++) {
                    auto dx = @in0(i,0) - @in0(j,0);
                    auto dy = @in0(i,1) - @in0(j,1);
                    auto dz = @in0(i,2) - @in0(j,2);
                    id[j] = {dx*dx + dy*dy + dz*dz, j};
                }
                // the k smallest come first, in no particular order
                nth_element(id.begin(), id.begin() + k, id.end());
                for (int j = 0; j < k; j++)
                    @out(i, j) = id[j].second;
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
