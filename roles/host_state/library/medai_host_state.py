#!/usr/bin/python
"""The one host-state mechanism of medai's roles: compare every managed file (and running sysctl value) in one
module call and write only what differs."""
from __future__ import annotations

import errno
import grp
import hashlib
import os
import pwd
import re
import stat

from ansible.module_utils.basic import AnsibleModule, _load_params
from ansible.module_utils.parsing.convert_bool import boolean

DOCUMENTATION = r"""
---
module: medai_host_state
short_description: Compare a role's managed files and running sysctl values in one call; write only what differs
description:
  - Takes every file and directory a role manages, once, and compares each with the host (content by sha256, owner,
    group, mode and type). Only what differs is written; an unchanged host costs one module call.
  - A file is written atomically (a temporary file in the same directory, fchown, fchmod, fsync, rename, fsync of the
    directory). A symbolic link at a file's path is replaced, never followed; a directory or other non-regular file
    where a file belongs (or anything but a directory where a directory belongs) is refused with an error naming the
    path. An existing file is opened with O_NOFOLLOW, so links the module did not create are never followed.
  - Entries are handled in order; a parent directory must exist or be listed earlier.
  - C(sysctl) sets RUNNING kernel parameters through /proc/sys, each only where the running value differs (compared
    after collapsing whitespace).
  - Check mode writes nothing and reports the same. Diff mode gives before/after text for non-secret C(content)
    files, and owner/mode changes as header lines.
options:
  files:
    description: The managed files and directories, in order.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path on the host.
        type: str
        required: true
      state:
        description: C(file) or C(directory).
        type: str
        choices: [file, directory]
        default: file
      content:
        description: The file's text (templated on the controller). One of I(content), I(src), I(sha256) for a file.
        type: str
      src:
        description: A regular file ON THE HOST whose bytes the file gets (read streamed).
        type: path
      sha256:
        description:
          - Compare only. The module never writes this file; it lists the path in C(differ) when the host's file is
            missing or has another hash, owner, group or mode, and the caller writes it.
        type: str
      owner:
        description: User name or numeric id.
        type: str
        default: root
      group:
        description: Group name or numeric id.
        type: str
        default: root
      mode:
        description: Octal mode as a quoted string, such as C("0600").
        type: raw
        required: true
      parents:
        description:
          - For a directory, its missing parents are created first with the entry's owner, group and mode (as
            ansible.builtin.file creates them; created only, never compared afterwards), each listed in
            C(changed_paths).
        type: bool
        default: false
      secret:
        description: The content (and its hash) never appears in the result, the diff or any message.
        type: bool
        default: false
      validate:
        description:
          - A command run on the written temporary file before it replaces I(path), C(%s) standing for that file
            (such as C(/usr/sbin/visudo -cf %s)); a non-zero exit fails the module naming the path, and the file is
            left as it was. Not run in check mode.
        type: str
  sysctl:
    description: Running kernel parameters, C(name) (dotted or slashed) to value.
    type: dict
    default: {}
author: medai
"""

EXAMPLES = r"""
- name: K3s | managed files
  medai_host_state:
    files:
      - {path: /etc/rancher/k3s, state: directory, mode: "0700"}
      - {path: /etc/rancher/k3s/cluster-token, content: "{{ medai_k3s_token }}\n", mode: "0600", secret: true}
      - {path: /etc/rancher/k3s/config.yaml, mode: "0600",
         content: "{{ lookup('ansible.builtin.template', 'config.yaml.j2', convert_data=false) }}"}
      - {path: /var/lib/rancher/k3s/agent/images/airgap.tar.zst, src: /var/lib/medai/bundle/files/airgap.tar.zst,
         mode: "0600"}
    sysctl:
      net.ipv4.ip_forward: 1
  register: medai_k3s_state

- name: Stage | what differs (compare only)
  medai_host_state:
    files:
      - {path: /var/lib/medai/bundle/files/x.tgz, sha256: "{{ x_sha256 }}", mode: "0600"}
  register: medai_stage_state
"""

RETURN = r"""
changed_paths:
  description: Paths written (in check mode, that would be written).
  returned: always
  type: list
  elements: str
differ:
  description: Compare-only (sha256) entries whose file is missing or differs.
  returned: always
  type: list
  elements: str
sysctl_changed:
  description: Kernel parameters written (in check mode, that would be written).
  returned: always
  type: list
  elements: str
diff:
  description: Ansible's diff format, one item per differing entry (only in diff mode).
  returned: when diff mode is on
  type: list
  elements: dict
"""

CHUNK = 1 << 20
DIFF_MAX = 256 * 1024
MODE_RE = re.compile(r"0?[0-7]{3,4}")


class HostStateError(Exception):
    """One line naming the path (or kernel parameter) at fault."""


def _raw_secrets():
    """Contents of the `secret` entries as passed, read before the arguments are validated: a validation failure
    (say, a misspelt option) reports the arguments, and must already mask them."""
    files = _load_params().get("files")
    return {e["content"] for e in files if isinstance(e, dict) and isinstance(e.get("content"), str) and e["content"]
            and boolean(e.get("secret", False), strict=False)} if isinstance(files, list) else set()


class _Module(AnsibleModule):
    def __init__(self, **kwargs):
        self._secrets = _raw_secrets()
        super().__init__(**kwargs)

    def _return_formatted(self, kwargs):
        self.no_log_values.update(self._secrets)
        super()._return_formatted(kwargs)

    def _log_invocation(self):
        # the host's journal gets the paths only: file contents (secrets among them) are never logged
        paths = [f.get("path") for f in self.params.get("files") or []]
        self.log(f"Invoked with paths={paths} sysctl={sorted(self.params.get('sysctl') or {})}")


def _ident(entry, field, lookup):
    """The numeric uid or gid an entry's owner or group names (pwd.getpwnam or grp.getgrnam as LOOKUP)."""
    name = entry[field]
    try:
        return int(name) if name.isdigit() else lookup(name)[2]
    except KeyError:
        raise HostStateError(f"{entry['path']}: {field} {name} does not exist on the host") from None


def _mode(entry):
    mode = entry["mode"]
    if not isinstance(mode, str) or not MODE_RE.fullmatch(mode):
        raise HostStateError(f"{entry['path']}: mode {mode!r} is not a quoted octal string such as \"0600\"")
    return int(mode, 8)


def _check_entry(entry):
    path = entry["path"]
    if not os.path.isabs(path) or ".." in path.split("/") or path != os.path.normpath(path):
        raise HostStateError(f"{path}: path must be absolute and normalised")
    sources = [k for k in ("content", "src", "sha256") if entry.get(k) is not None]
    if entry["parents"] and entry["state"] != "directory":
        raise HostStateError(f"{path}: parents is for directories only")
    if entry["state"] == "directory" and sources:
        raise HostStateError(f"{path}: a directory takes no {sources[0]}")
    if entry["state"] == "file" and len(sources) != 1:
        raise HostStateError(f"{path}: a file needs exactly one of content, src, sha256 (got {', '.join(sources) or 'none'})")
    if entry.get("sha256") is not None and not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
        raise HostStateError(f"{path}: sha256 is not 64 lowercase hex digits")
    if entry.get("validate") is not None and ("%s" not in entry["validate"] or entry.get("sha256") is not None
                                              or entry["state"] != "file"):
        raise HostStateError(f"{path}: validate needs %s and a file the module writes (content or src)")


def _hash_fd(fd):
    h = hashlib.sha256()
    while True:
        block = os.read(fd, CHUNK)
        if not block:
            return h.hexdigest()
        h.update(block)


def _open_nofollow(path, flags):
    """fd of the existing entry at path (never through a symbolic link), 'link' for a link, None when missing."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        if e.errno == errno.ELOOP:
            return "link"
        if e.errno == errno.ENOTDIR and flags & os.O_DIRECTORY:
            return "notdir"
        raise HostStateError(f"{path}: cannot open ({e.strerror})") from None


def _src_fd(entry):
    try:
        fd = os.open(entry["src"], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise HostStateError(f"{entry['path']}: src {entry['src']} cannot be read ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise HostStateError(f"{entry['path']}: src {entry['src']} is not a regular file")
    return fd


class HostState:
    def __init__(self, module):
        self.m = module
        self.check = module.check_mode
        self.created_dirs = set()
        self.changed_paths, self.differ, self.sysctl_changed, self.diff = [], [], [], []

    # ------------------------------------------------------------------ directories
    def directory(self, entry, uid, gid, mode):
        path = entry["path"]
        fd = _open_nofollow(path, os.O_RDONLY | os.O_DIRECTORY)
        if fd in ("link", "notdir"):
            raise HostStateError(f"{path}: something other than a directory is there (refused)")
        if fd is None:
            if entry["parents"]:
                self._make_parents(os.path.dirname(path), uid, gid, mode)
            self._parent_exists(path)
            self._record(entry, None, uid, gid, mode)
            if not self.check:
                self._mkdir(path, uid, gid, mode)
            self.created_dirs.add(path)
            return
        try:
            st = os.fstat(fd)
            if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (uid, gid, mode):
                self._record(entry, st, uid, gid, mode)
                if not self.check:
                    self._set_attrs(fd, path, uid, gid, mode)
        finally:
            os.close(fd)

    def _make_parents(self, parent, uid, gid, mode):
        """mkdir -p of a directory entry's missing parents, each with the entry's owner, group and mode (as
        ansible.builtin.file makes them); only created, never compared."""
        if parent in self.created_dirs or os.path.isdir(parent):
            return
        self._make_parents(os.path.dirname(parent), uid, gid, mode)
        if os.path.lexists(parent):
            raise HostStateError(f"{parent}: something other than a directory is there (refused)")
        self.changed_paths.append(parent)
        if not self.check:
            self._mkdir(parent, uid, gid, mode)
        self.created_dirs.add(parent)

    def _mkdir(self, path, uid, gid, mode):
        """A new directory, private until its owner, group and mode are set on it through its own fd."""
        os.mkdir(path, 0o700)
        fd = _open_nofollow(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._set_attrs(fd, path, uid, gid, mode)
        finally:
            os.close(fd)

    def _parent_exists(self, path):
        parent = os.path.dirname(path)
        if parent in self.created_dirs:
            return
        if not os.path.isdir(parent):
            raise HostStateError(f"{path}: parent directory {parent} does not exist (list it earlier or create it first)")

    # ------------------------------------------------------------------ files
    def file(self, entry, uid, gid, mode):
        path = entry["path"]
        fd = _open_nofollow(path, os.O_RDONLY)
        st = None
        try:
            if fd == "link":
                fd = None  # replaced by the rename below, never followed
                same_content = False
            elif fd is None:
                self._parent_exists(path)
                same_content = False
            else:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise HostStateError(f"{path}: a {_kind(st)} is there, not a regular file (refused)")
                same_content = self._same_content(entry, fd, st)
            same_attrs = st is not None and (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, mode)
            if same_content and same_attrs:
                return
            if entry.get("sha256") is not None:
                self.differ.append(path)
                return
            self._record(entry, st, uid, gid, mode, fd if not same_content else None)
            if self.check:
                return
            if same_content:
                self._set_attrs(fd, path, uid, gid, mode)
            else:
                self._write(entry, uid, gid, mode)
        finally:
            if isinstance(fd, int):
                os.close(fd)

    def _same_content(self, entry, fd, st):
        if entry.get("sha256") is not None:
            return _hash_fd(fd) == entry["sha256"]
        if entry.get("content") is not None:
            data = entry["content"].encode("utf-8")
            return st.st_size == len(data) and _hash_fd(fd) == hashlib.sha256(data).hexdigest()
        src = _src_fd(entry)
        try:
            return st.st_size == os.fstat(src).st_size and _hash_fd(fd) == _hash_fd(src)
        finally:
            os.close(src)

    def _write(self, entry, uid, gid, mode):
        path = entry["path"]
        directory, base = os.path.split(path)
        tmp = os.path.join(directory, f".{base}.medai-{os.urandom(6).hex()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise HostStateError(f"{path}: cannot write ({e.strerror})") from None
        try:
            if entry.get("content") is not None:
                _write_all(fd, entry["content"].encode("utf-8"))
            else:
                src = _src_fd(entry)
                try:
                    while True:
                        block = os.read(src, CHUNK)
                        if not block:
                            break
                        _write_all(fd, block)
                finally:
                    os.close(src)
            self._set_attrs(fd, tmp, uid, gid, mode)
            os.fsync(fd)
            os.close(fd)
            fd = None
            self._validate(entry, tmp)
            self._selinux_default(tmp, path)
            os.rename(tmp, path)
        except BaseException:
            if fd is not None:
                os.close(fd)
            os.unlink(tmp)
            raise
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _validate(self, entry, tmp):
        if entry.get("validate") is None:
            return
        rc, out, err = self.m.run_command(entry["validate"] % tmp)
        if rc != 0:
            said = "" if entry["secret"] else ": " + " ".join((err or out).split())[:300]
            raise HostStateError(f"{entry['path']}: validate ({entry['validate']}) failed with exit {rc}{said}")

    def _selinux_default(self, tmp, path):
        if self.m.selinux_enabled():
            self.m.set_context_if_different(tmp, self.m.selinux_default_context(path), False)

    def _set_attrs(self, fd, path, uid, gid, mode):
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        except OSError as e:
            raise HostStateError(f"{path}: cannot set owner/mode ({e.strerror})") from None

    # ------------------------------------------------------------------ the report
    def _record(self, entry, st, uid, gid, mode, fd=None):
        self.changed_paths.append(entry["path"])
        if not self.m._diff:
            return
        before = "" if st is None else _attrs_text(st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
        after = _attrs_text(uid, gid, mode)
        item = {"before_header": f"{entry['path']} ({before or 'absent'})",
                "after_header": f"{entry['path']} ({after})", "before": "", "after": ""}
        if entry["state"] == "directory":
            item.update(before="" if st is None else "directory\n", after="directory\n")
        elif entry["secret"]:
            item.update(before="" if st is None else "(secret content)\n",
                        after="(secret content)\n" if st is not None and fd is None else "(secret content, written)\n")
        elif entry.get("content") is not None:
            item["after"] = entry["content"]
            item["before"] = _text_of(fd, st) if fd is not None else (
                item["after"] if st is not None else "")
        self.diff.append(item)

    # ------------------------------------------------------------------ sysctl
    def sysctl(self, name, value):
        if isinstance(value, bool):
            value = int(value)
        want = " ".join(str(value).split())
        rel = name if "/" in name else name.replace(".", "/")
        path = os.path.join("/proc/sys", rel)
        if not re.fullmatch(r"[A-Za-z0-9_.\-/@:]+", name) or ".." in rel.split("/"):
            raise HostStateError(f"sysctl {name}: not a kernel parameter name")
        try:
            with open(path) as f:
                now = " ".join(f.read().split())
        except OSError as e:
            raise HostStateError(f"sysctl {name}: cannot read {path} ({e.strerror})") from None
        if now == want:
            return
        self.sysctl_changed.append(name)
        if self.m._diff:
            self.diff.append({"before_header": f"sysctl {name}", "after_header": f"sysctl {name}",
                              "before": now + "\n", "after": want + "\n"})
        if self.check:
            return
        try:
            with open(path, "w") as f:
                f.write(want)
        except OSError as e:
            raise HostStateError(f"sysctl {name}: cannot write {path} ({e.strerror})") from None


def _kind(st):
    for test, word in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(st.st_mode):
            return word
    return "non-regular file"


def _attrs_text(uid, gid, mode):
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return f"{user}:{group} {mode:04o}"


def _text_of(fd, st):
    if st.st_size > DIFF_MAX:
        return f"({st.st_size} bytes, not shown)\n"
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while True:
        block = os.read(fd, CHUNK)
        if not block:
            break
        data += block
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"(binary, {len(data)} bytes)\n"


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def run(module, state):
    for entry in module.params["files"]:
        _check_entry(entry)
        uid, gid, mode = _ident(entry, "owner", pwd.getpwnam), _ident(entry, "group", grp.getgrnam), _mode(entry)
        if entry["state"] == "directory":
            state.directory(entry, uid, gid, mode)
        else:
            state.file(entry, uid, gid, mode)
    for name, value in (module.params["sysctl"] or {}).items():
        state.sysctl(name, value)
    result = {"changed": bool(state.changed_paths or state.sysctl_changed), "changed_paths": state.changed_paths,
              "differ": state.differ, "sysctl_changed": state.sysctl_changed}
    if module._diff:
        result["diff"] = state.diff
    return result


def main():
    entry_spec = dict(
        path=dict(type="str", required=True),
        state=dict(type="str", choices=["file", "directory"], default="file"),
        content=dict(type="str", no_log=False),
        src=dict(type="path"),
        sha256=dict(type="str"),
        owner=dict(type="str", default="root"),
        group=dict(type="str", default="root"),
        mode=dict(type="raw", required=True),
        secret=dict(type="bool", default=False),
        validate=dict(type="str"),
        parents=dict(type="bool", default=False),
    )
    module = _Module(
        argument_spec=dict(files=dict(type="list", elements="dict", options=entry_spec, default=[]),
                           sysctl=dict(type="dict", default={})),
        supports_check_mode=True,
    )
    module.no_log_values.update(module._secrets)
    state = HostState(module)
    try:
        result = run(module, state)
    except HostStateError as e:
        module.fail_json(msg=str(e), changed_paths=state.changed_paths, sysctl_changed=state.sysctl_changed)
    except OSError as e:
        module.fail_json(msg=f"{e.filename}: {e.strerror}", changed_paths=state.changed_paths,
                         sysctl_changed=state.sysctl_changed)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
