"""One certificate as medai reports it, and its ok / warn / crit classification against the site's thresholds.

Thresholds: warn when fewer than ``medai_cert_warn_days`` (30) days are left, crit under ``medai_cert_crit_days``
(7); both settable in the inventory's all.vars. An unreadable, expired or not-yet-valid certificate is crit.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID

from installer.core.errors import InventoryError

OK, WARN, CRIT = "ok", "warn", "crit"
RANK = {OK: 0, WARN: 1, CRIT: 2}
GROUPS = ("k3s", "vault", "intermediate", "kubeconfig", "operators")


@dataclass(frozen=True)
class Thresholds:
    warn_days: float = 30
    crit_days: float = 7


def thresholds(inv) -> Thresholds:
    """The inventory's medai_cert_warn_days / medai_cert_crit_days (numbers of days, crit below warn)."""
    extra = dict(inv.site.model_extra or {})
    out = {}
    for key, default in (("medai_cert_warn_days", 30), ("medai_cert_crit_days", 7)):
        v = extra.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise InventoryError(f"{inv.path}: all.vars.{key}: {v!r} is not a number of days", field=f"all.vars.{key}")
        out[key] = float(v)
    if out["medai_cert_crit_days"] > out["medai_cert_warn_days"]:
        raise InventoryError(f"{inv.path}: all.vars.medai_cert_crit_days: more than medai_cert_warn_days",
                             field="all.vars.medai_cert_crit_days")
    return Thresholds(out["medai_cert_warn_days"], out["medai_cert_crit_days"])


@dataclass
class Cert:
    group: str                      # one of GROUPS
    name: str                       # what it is: a file path on the node, "intermediate", "keycloak", a key's uid
    where: str                      # the host, or the source (vault pki_int, kubeconfig-<cluster>, a key file)
    subject: str = ""
    issuer: str = ""
    names: list[str] = field(default_factory=list)
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None  # None with no error: never expires (an OpenPGP key without expiry)
    serial: str = ""
    error: str | None = None

    def days_left(self, now: dt.datetime) -> float | None:
        return None if self.not_after is None else (self.not_after - now).total_seconds() / 86400

    def classify(self, now: dt.datetime, th: Thresholds) -> tuple[str, str]:
        """(level, the fact behind it) for one line."""
        if self.error:
            return CRIT, self.error
        if self.not_before is not None and now < self.not_before:
            return CRIT, f"not valid before {_day(self.not_before)} (not yet valid; check the clocks)"
        left = self.days_left(now)
        if left is None:
            return OK, "never expires"
        if left <= 0:
            return CRIT, f"expired {_day(self.not_after)} ({_span(-left)} ago)"
        fact = f"expires {_day(self.not_after)} ({_span(left)} left)"
        if left < th.crit_days:
            return CRIT, fact
        if left < th.warn_days:
            return WARN, fact
        return OK, fact

    def as_dict(self, now: dt.datetime, th: Thresholds) -> dict:
        level, fact = self.classify(now, th)
        left = self.days_left(now)
        return {"group": self.group, "name": self.name, "where": self.where, "subject": self.subject,
                "issuer": self.issuer, "names": self.names, "serial": self.serial,
                "notBefore": self.not_before.isoformat() if self.not_before else None,
                "notAfter": self.not_after.isoformat() if self.not_after else None,
                "daysLeft": None if left is None else round(left, 2), "level": level, "fact": fact,
                "error": self.error}


def from_dict(d: dict) -> Cert:
    """A Cert back from its as_dict (a run record's summary), to be classified again at another time."""
    t = lambda v: dt.datetime.fromisoformat(v) if v else None  # noqa: E731
    return Cert(d["group"], d["name"], d["where"], d.get("subject", ""), d.get("issuer", ""), d.get("names") or [],
                t(d.get("notBefore")), t(d.get("notAfter")), d.get("serial", ""), d.get("error"))


def _day(t: dt.datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC") if t else "?"


def _span(days: float) -> str:
    if days >= 2:
        return f"{int(days)} days"
    hours = days * 24
    return f"{hours:.1f} hours" if hours >= 1 else f"{int(hours * 60)} minutes"


def _cn(name: x509.Name) -> str:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else name.rfc4514_string()


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in ext.get_values_for_type(x509.DNSName)] + \
           [str(v) for v in ext.get_values_for_type(x509.IPAddress)]


def serial_text(serial: int) -> str:
    """A serial number as Vault and OpenSSL print it: whole bytes in hex, colon-separated (79:d6:…:0b)."""
    return ":".join(f"{b:02x}" for b in serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big"))


def from_x509(cert: x509.Certificate, group: str, name: str, where: str) -> Cert:
    return Cert(group, name, where, subject=_cn(cert.subject), issuer=_cn(cert.issuer), names=_sans(cert),
                not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                serial=serial_text(cert.serial_number))


def from_pem(data: bytes, group: str, name: str, where: str) -> Cert:
    """The first certificate of a PEM file (a K3s file may hold leaf + CA: the leaf comes first); a file that is
    not one gives a Cert carrying the error, so it is reported on its own line."""
    try:
        return from_x509(x509.load_pem_x509_certificate(data), group, name, where)
    except ValueError as e:
        reason = str(e).splitlines()[0][:120] if str(e) else "unreadable"
        return Cert(group, name, where, error=f"not a readable PEM certificate ({reason})")


def pem_blocks(text: str) -> list[str]:
    """Every certificate block of a PEM chain, in order."""
    end = "-----END CERTIFICATE-----"
    return [b.strip() + "\n" + end + "\n" for b in text.split(end) if "-----BEGIN CERTIFICATE-----" in b]


def worst(levels) -> str:
    return max(levels, key=lambda lv: RANK[lv], default=OK)
