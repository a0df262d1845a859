"""medai_host_state (roles/host_state/library): the real module, run as Ansible runs it on a host (its JSON arguments
in a file, its JSON result on stdout), plus one playbook that loads it through a role dependency as the roles do."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "roles/host_state/library/medai_host_state.py"
BIN = Path(sys.executable).parent
SECRET = "s3cr3t-token-value-0123456789abcdef"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the module sets owner root; these tests run as root")


def run_module(tmp_path: Path, files=(), sysctl=None, check=False, diff=False) -> dict:
    args = {"ANSIBLE_MODULE_ARGS": {"files": list(files), "sysctl": sysctl or {}, "_ansible_check_mode": check,
                                    "_ansible_diff": diff, "_ansible_no_log": False}}
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps(args))
    r = subprocess.run([sys.executable, str(MODULE), str(argfile)], capture_output=True, text=True, timeout=30)
    argfile.unlink()
    out = json.loads(r.stdout)
    out["_stdout"] = r.stdout + r.stderr
    return out


def attrs(p: Path) -> tuple[int, int, int]:
    st = p.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def entries(d: Path) -> list[dict]:
    return [{"path": str(d / "etc"), "state": "directory", "mode": "0750"},
            {"path": str(d / "etc/app.conf"), "content": "a = 1\n", "mode": "0644"},
            {"path": str(d / "etc/token"), "content": SECRET + "\n", "mode": "0600", "secret": True}]


def test_writes_then_a_rerun_changes_nothing(tmp_path):
    r = run_module(tmp_path, entries(tmp_path))
    assert r["changed"] and r["changed_paths"] == [str(tmp_path / p) for p in ("etc", "etc/app.conf", "etc/token")]
    assert (tmp_path / "etc/app.conf").read_text() == "a = 1\n"
    assert attrs(tmp_path / "etc") == (0, 0, 0o750)
    assert attrs(tmp_path / "etc/app.conf") == (0, 0, 0o644)
    assert attrs(tmp_path / "etc/token") == (0, 0, 0o600)
    assert [p.name for p in (tmp_path / "etc").iterdir() if p.name.startswith(".")] == []  # no temp file left
    again = run_module(tmp_path, entries(tmp_path))
    assert again["changed"] is False and again["changed_paths"] == [] and again["differ"] == []


def test_altered_content_and_mode_are_reported_and_fixed(tmp_path):
    run_module(tmp_path, entries(tmp_path))
    conf = tmp_path / "etc/app.conf"
    conf.write_text("a = 2\n")
    (tmp_path / "etc").chmod(0o755)
    (tmp_path / "etc/token").chmod(0o644)
    inode = (tmp_path / "etc/token").stat().st_ino
    r = run_module(tmp_path, entries(tmp_path))
    assert r["changed_paths"] == [str(tmp_path / "etc"), str(conf), str(tmp_path / "etc/token")]
    assert conf.read_text() == "a = 1\n" and attrs(tmp_path / "etc") == (0, 0, 0o750)
    # only the mode differed: fixed in place, not rewritten
    assert attrs(tmp_path / "etc/token") == (0, 0, 0o600) and (tmp_path / "etc/token").stat().st_ino == inode


def test_check_mode_writes_nothing_and_reports_with_diff(tmp_path):
    run_module(tmp_path, entries(tmp_path))
    conf = tmp_path / "etc/app.conf"
    conf.write_text("a = 2\n")
    conf.chmod(0o600)
    new = tmp_path / "new"
    files = entries(tmp_path) + [{"path": str(new), "state": "directory", "mode": "0700"},
                                 {"path": str(new / "x"), "content": "x\n", "mode": "0600"}]
    r = run_module(tmp_path, files, check=True, diff=True)
    assert r["changed"] and r["changed_paths"] == [str(conf), str(new), str(new / "x")]
    assert conf.read_text() == "a = 2\n" and attrs(conf)[2] == 0o600 and not new.exists()
    d = {item["after_header"].split(" ")[0]: item for item in r["diff"]}
    assert d[str(conf)]["before"] == "a = 2\n" and d[str(conf)]["after"] == "a = 1\n"
    assert d[str(conf)]["before_header"] == f"{conf} (root:root 0600)"
    assert d[str(conf)]["after_header"] == f"{conf} (root:root 0644)"
    assert d[str(new / "x")]["before_header"].endswith("(absent)")


def test_secret_content_never_in_the_result(tmp_path):
    files = entries(tmp_path)
    results = [run_module(tmp_path, files, diff=True)]
    (tmp_path / "etc/token").write_text("old\n")
    results.append(run_module(tmp_path, files, check=True, diff=True))
    results.append(run_module(tmp_path, files + [{"path": str(tmp_path / "nodir/t"), "content": SECRET,
                                                  "mode": "0600", "secret": True}]))
    # refused by the argument check (an unknown option): that report already masks the secret
    results.append(run_module(tmp_path, [{"path": str(tmp_path / "t"), "content": SECRET, "mode": "0600",
                                          "secret": "yes", "bogus": 1}]))
    assert results[3]["failed"] and "bogus" in results[3]["msg"]
    assert results[1]["changed_paths"] == [str(tmp_path / "etc/token")]
    assert results[2]["failed"]
    for r in results:
        out = r["_stdout"]
        for enc in (SECRET, base64.b64encode(SECRET.encode()).decode(), base64.b64encode((SECRET + "\n").encode()).decode(),
                    hashlib.sha256((SECRET + "\n").encode()).hexdigest(), hashlib.sha256(SECRET.encode()).hexdigest(),
                    SECRET.encode().hex()):
            assert enc not in out, enc


def test_a_symlink_at_the_path_is_replaced_never_followed(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep me\n")
    target.chmod(0o644)
    (tmp_path / "f").symlink_to(target)
    r = run_module(tmp_path, [{"path": str(tmp_path / "f"), "content": "new\n", "mode": "0600"}])
    assert r["changed_paths"] == [str(tmp_path / "f")]
    assert not (tmp_path / "f").is_symlink() and (tmp_path / "f").read_text() == "new\n"
    assert target.read_text() == "keep me\n" and attrs(target)[2] == 0o644
    # a link where a directory belongs is refused, naming the path
    (tmp_path / "d").symlink_to(tmp_path)
    r = run_module(tmp_path, [{"path": str(tmp_path / "d"), "state": "directory", "mode": "0700"}])
    assert r["failed"] and r["msg"].startswith(f"{tmp_path / 'd'}: ") and "\n" not in r["msg"]
    assert (tmp_path / "d").is_symlink()


def test_a_directory_where_a_file_belongs_is_refused(tmp_path):
    (tmp_path / "f").mkdir()
    r = run_module(tmp_path, [{"path": str(tmp_path / "f"), "content": "x", "mode": "0600"}])
    assert r["failed"] and r["msg"] == f"{tmp_path / 'f'}: a directory is there, not a regular file (refused)"


def test_src_is_copied_streamed_and_compared_by_hash(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))
    dest = tmp_path / "dest.bin"
    entry = {"path": str(dest), "src": str(src), "mode": "0600"}
    assert run_module(tmp_path, [entry])["changed_paths"] == [str(dest)]
    assert dest.read_bytes() == src.read_bytes()
    assert run_module(tmp_path, [entry])["changed"] is False
    with dest.open("r+b") as f:  # same size, other bytes
        f.write(b"\0\1\2")
    assert run_module(tmp_path, [entry])["changed_paths"] == [str(dest)]
    assert dest.read_bytes() == src.read_bytes()


def test_compare_only_sha256_entries_are_listed_in_differ_never_written(tmp_path):
    good, bad, missing, wrong_mode = (tmp_path / n for n in ("good", "bad", "missing", "wrong_mode"))
    for p in (good, bad, wrong_mode):
        p.write_text("bytes\n")
        p.chmod(0o600)
    wrong_mode.chmod(0o644)
    bad.write_text("other\n")
    sha = hashlib.sha256(b"bytes\n").hexdigest()
    r = run_module(tmp_path, [{"path": str(p), "sha256": sha, "mode": "0600"} for p in (good, bad, missing, wrong_mode)])
    assert r["differ"] == [str(bad), str(missing), str(wrong_mode)]
    assert r["changed"] is False and r["changed_paths"] == []
    assert bad.read_text() == "other\n" and not missing.exists() and attrs(wrong_mode)[2] == 0o644


def test_missing_parent_is_one_line_naming_the_path(tmp_path):
    p = tmp_path / "no/such/file"
    r = run_module(tmp_path, [{"path": str(p), "content": "x", "mode": "0600"}])
    assert r["failed"] and r["msg"] == (f"{p}: parent directory {p.parent} does not exist "
                                        "(list it earlier or create it first)")
    r = run_module(tmp_path, [{"path": str(p), "content": "x", "mode": 384}])
    assert r["failed"] and r["msg"].startswith(f"{p}: mode 384 is not a quoted octal string")


def test_sysctl_running_values_compared(tmp_path):
    ostype = Path("/proc/sys/kernel/ostype").read_text().strip()
    r = run_module(tmp_path, sysctl={"kernel.ostype": ostype}, check=True)
    assert r["changed"] is False and r["sysctl_changed"] == []
    r = run_module(tmp_path, sysctl={"kernel.ostype": "Other"}, check=True, diff=True)
    assert r["changed"] and r["sysctl_changed"] == ["kernel.ostype"]
    assert r["diff"] == [{"before_header": "sysctl kernel.ostype", "after_header": "sysctl kernel.ostype",
                          "before": ostype + "\n", "after": "Other\n"}]
    assert Path("/proc/sys/kernel/ostype").read_text().strip() == ostype
    r = run_module(tmp_path, sysctl={"kernel.no_such_parameter": 1}, check=True)
    assert r["failed"] and r["msg"].startswith("sysctl kernel.no_such_parameter: cannot read /proc/sys/kernel/")


def test_loaded_through_a_role_dependency_with_check_and_diff(tmp_path):
    """A role that declares host_state in meta/main.yml runs the module as a plain task (the pattern every role uses);
    -vvv shows every result and the module's arguments, and the secret is in none of them."""
    role = tmp_path / "roles/demo"
    (role / "meta").mkdir(parents=True)
    (role / "tasks").mkdir()
    (role / "meta/main.yml").write_text("dependencies: [{role: host_state}]\n")
    (role / "tasks/main.yml").write_text(
        "- name: Demo | managed files\n"
        "  medai_host_state:\n"
        "    files:\n"
        f"      - {{path: '{tmp_path}/conf', content: \"v = 1\\n\", mode: '0640'}}\n"
        f"      - {{path: '{tmp_path}/tok', content: '{SECRET}', mode: '0600', secret: true}}\n"
        "  register: medai_demo_state\n"
        "- name: Demo | report\n"
        "  ansible.builtin.debug:\n"
        "    msg: \"paths={{ medai_demo_state.changed_paths | join(',') }}\"\n")
    (tmp_path / "play.yml").write_text("- hosts: localhost\n  connection: local\n  gather_facts: false\n"
                                       "  roles: [demo]\n")
    env = dict(os.environ, ANSIBLE_ROLES_PATH=f"{tmp_path / 'roles'}:{ROOT / 'roles'}", NO_COLOR="1",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", ANSIBLE_LOCALHOST_WARNING="false")

    def play(*flags):
        r = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-e",
                            f"ansible_python_interpreter={sys.executable}", *flags, str(tmp_path / "play.yml")],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return r.stdout + r.stderr

    out = play("--check", "--diff", "-vvv")
    assert f"paths={tmp_path}/conf,{tmp_path}/tok" in out and "+v = 1" in out
    assert not (tmp_path / "conf").exists()
    out += play("--diff", "-vvv")
    assert (tmp_path / "conf").read_text() == "v = 1\n" and (tmp_path / "tok").read_text() == SECRET
    assert '"msg": "paths="' in play()  # the rerun writes nothing
    for enc in (SECRET, base64.b64encode(SECRET.encode()).decode(), hashlib.sha256(SECRET.encode()).hexdigest()):
        assert enc not in out


def test_parents_of_a_directory_created_only_when_asked(tmp_path):
    deep = tmp_path / "a/b/c"
    r = run_module(tmp_path, [{"path": str(deep), "state": "directory", "mode": "0700"}])
    assert r["failed"] and r["msg"].startswith(f"{deep}: parent directory {deep.parent} does not exist")
    entry = {"path": str(deep), "state": "directory", "mode": "0700", "parents": True}
    r = run_module(tmp_path, [entry], check=True)
    assert r["changed_paths"] == [str(tmp_path / "a"), str(tmp_path / "a/b"), str(deep)] and not (tmp_path / "a").exists()
    assert run_module(tmp_path, [entry])["changed_paths"] == r["changed_paths"]
    assert attrs(tmp_path / "a/b") == (0, 0, 0o700) and attrs(deep) == (0, 0, 0o700)  # as ansible.builtin.file does
    (tmp_path / "a").chmod(0o755)  # a parent is created, never compared
    assert run_module(tmp_path, [entry])["changed"] is False


def test_validate_runs_on_the_temporary_file_and_a_failure_leaves_the_file_as_it_was(tmp_path):
    conf = tmp_path / "sudoers-like"
    good = {"path": str(conf), "content": "Defaults ignore_dot\n", "mode": "0440",
            "validate": "grep -qx 'Defaults ignore_dot' %s"}
    assert run_module(tmp_path, [good])["changed_paths"] == [str(conf)] and conf.read_text() == "Defaults ignore_dot\n"
    bad = dict(good, content="Defaults umask=bogus\n")
    r = run_module(tmp_path, [bad])
    assert r.get("failed") and r["msg"].startswith(f"{conf}: validate (grep -qx 'Defaults ignore_dot' %s) failed with exit 1")
    assert conf.read_text() == "Defaults ignore_dot\n" and [p.name for p in tmp_path.iterdir()] == ["sudoers-like"]
    assert run_module(tmp_path, [bad], check=True)["changed_paths"] == [str(conf)]  # check mode: not run, reported
    assert "validate needs %s" in run_module(tmp_path, [dict(good, validate="true")])["msg"]
