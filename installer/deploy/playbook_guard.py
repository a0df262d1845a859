#!/usr/bin/env python3
"""Exec ansible-playbook so that it dies with the `medai` process that started it.

ansible-runner spawns ansible-playbook on its own pty with SIGHUP ignored, so a `medai install` killed with
SIGKILL would leave the playbook running on the hosts, unseen. This wrapper asks the kernel to send SIGTERM
when its parent goes away (PR_SET_PDEATHSIG survives exec), then becomes ansible-playbook.
"""
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        sys.exit(f"medai: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}")
    expected = os.environ.get("MEDAI_PARENT_PID")
    if expected and os.getppid() != int(expected):
        sys.exit("medai: the medai process that started this playbook is gone")
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if not os.path.exists(playbook):
        playbook = "ansible-playbook"
    os.execvp(playbook, [playbook, *sys.argv[1:]])


if __name__ == "__main__":
    main()
