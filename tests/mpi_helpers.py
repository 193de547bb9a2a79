"""Launching MPI jobs from tests: find mpiexec, skip cleanly without MPI, never hang.

    from mpi_helpers import needs_mpi, mpiexec_run

Each job runs under a timeout; on a timeout its whole process group is killed and the test
fails with the job's output, so a hung rank never blocks the suite.
"""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TIMEOUT = 90  # seconds per job: the jobs take 2-5 s; a hang is killed well before CI's limit


def mpiexec():
    """mpiexec next to this Python (a venv with the PyPI mpich wheel), else on PATH, else None."""
    local = Path(sys.executable).parent / "mpiexec"
    if local.exists():
        return str(local)
    return shutil.which("mpiexec")


def skip_reason():
    """Why MPI jobs cannot run here, or None."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install mpi4py mpich, or pip install 'dagrad[distributed]')"
    if mpiexec() is None:
        return "no mpiexec next to the Python executable or on PATH (pip install mpich, or install an MPI)"
    return None


needs_mpi = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def mpiexec_run(n, script, *args, expect_ok=True, threads=2, timeout=TIMEOUT):
    """Runs `python script args...` on n ranks; returns (returncode, output)."""
    cmd = [mpiexec(), "-n", str(n), sys.executable, str(script), *map(str, args)]
    env = dict(os.environ, DAGRAD_NUM_THREADS=str(threads), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {script} {' '.join(map(str, args))} did not finish in {timeout} s "
                    f"(killed):\n{out[-3000:]}")
    if expect_ok:
        assert proc.returncode == 0, f"mpiexec -n {n} {script} {' '.join(map(str, args))} failed:\n{out[-3000:]}"
    return proc.returncode, out
