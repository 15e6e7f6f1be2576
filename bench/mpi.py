"""Data parallelism over MPI on this machine (2 ranks on its 2 cores, so this
measures overhead, not speed-up):

- all-reduce: kiln's lazy operator (jt.mpi_all_reduce(x).sync(), a graph op
  run at sync) against the OpenMPI MPI_Allreduce it wraps, called directly
  (in place) on a NumPy buffer, for 4 KB to 64 MB of float32; time per call
  and bandwidth (bytes per second), ratio = MPI time / kiln time (1.00: no
  overhead). Of a held x kiln must write a new buffer (values are immutable),
  so MPI works out of place; of a temporary (x*0.5, as gradients are) it
  reduces in place; the MPI side then scales with NumPy first;
- the ResNet-18 training step (batch 8 global, 224x224, SGD with momentum,
  optimizer.step(loss)) in one process, and on 2 ranks with 4 images each
  (gradients averaged in buckets, sync batch norm).

Run it plainly: it starts its own `mpirun -np 2`. Needs OpenMPI
(scripts/install.sh --packages mpi)."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

from _timing import median_time  # noqa: E402


def launch():
    mpirun = shutil.which("mpirun")
    if not mpirun:
        print("mpi: mpirun not found (scripts/install.sh --packages mpi)")
        return
    cmd = [mpirun, "-np", "2", "--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)   # each rank takes its share of the cores
    out = subprocess.run(cmd + [sys.executable, os.path.abspath(__file__), "--rank"], env=env,
                         capture_output=True, text=True)
    sys.stdout.write(out.stdout)
    if out.returncode:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(out.returncode)
    one = subprocess.run([sys.executable, os.path.abspath(__file__), "--one"], capture_output=True,
                         text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
    sys.stdout.write(one.stdout)
    if one.returncode:
        sys.stderr.write(one.stderr[-3000:])
        raise SystemExit(one.returncode)


def resnet_step_ms(batch):
    import numpy as np
    import kiln as jt
    import kiln.models as models
    rng = np.random.RandomState(0)
    jt.seed(0)
    model = models.resnet18()
    opt = jt.optim.SGD(model.parameters(), 0.01, momentum=0.9)
    x = jt.array(rng.rand(batch, 3, 224, 224).astype(np.float32))
    y = jt.array(rng.randint(0, 1000, batch).astype(np.int64))
    loss_fn = jt.nn.CrossEntropyLoss()

    def step():
        loss = loss_fn(model(x), y)
        opt.step(loss)
        return loss.item()

    step()
    return median_time(step, 5, 1) * 1e3


def ranks():
    import numpy as np
    import kiln as jt
    from kiln import _C
    assert jt.world_size == 2
    lines = []
    for kb in (4, 64, 1024, 16 * 1024, 64 * 1024):
        n = kb * 1024 // 4
        host, scaled = np.ones(n, np.float32), np.empty(n, np.float32)
        x = jt.array(host)
        repeat = 200 if kb <= 64 else 50 if kb <= 1024 else 10

        def raw():
            _C.mpi_all_reduce_host(host, "float32")

        def held():
            jt.mpi_all_reduce(x, "add").sync()

        def raw_temporary():
            np.multiply(host, 0.5, out=scaled)
            _C.mpi_all_reduce_host(scaled, "float32")

        def temporary():
            jt.mpi_all_reduce(x * 0.5, "add").sync()

        size = f"{kb} KB" if kb < 1024 else f"{kb // 1024} MB"
        for what, k, r in (("", held, raw), (" of x*0.5", temporary, raw_temporary)):
            t_raw, t_kiln = median_time(r, repeat, 1), median_time(k, repeat, 1)
            # bandwidth: the array's bytes per second (for 2 ranks also the ring's bus bandwidth)
            lines.append(f"{'mpi all_reduce ' + size + what:<32} kiln {t_kiln * 1e6:9.1f} us "
                         f"{n * 4 / t_kiln / 1e9:6.2f} GB/s   MPI_Allreduce {t_raw * 1e6:9.1f} us "
                         f"{n * 4 / t_raw / 1e9:6.2f} GB/s   ratio {t_raw / t_kiln:5.2f}x")
    ms = resnet_step_ms(4)
    lines.append(f"{'resnet18 train step, batch 8 on 2 ranks':<40} {ms:9.1f} ms per step "
                 f"(KILN_THREADS={os.environ.get('KILN_THREADS')} per rank)")
    if jt.rank == 0:
        print("\n".join(lines), flush=True)


def one():
    ms = resnet_step_ms(8)
    print(f"{'resnet18 train step, batch 8 on 1 rank':<40} {ms:9.1f} ms per step (2 threads)", flush=True)


if __name__ == "__main__":
    if "--rank" in sys.argv:
        ranks()
    elif "--one" in sys.argv:
        one()
    else:
        launch()
