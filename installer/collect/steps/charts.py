"""Charts: fetch, render at the bundled Kubernetes version, and the image gate, before any other download;
their artifacts are added once the images are known (neededBy both ways)."""
from __future__ import annotations

from installer.bundle.artifacts import Artifact
from installer.bundle.lock import chart_key
from installer.bundle.policy import chart_only_images, check_registries
from installer.collect.charts import fetch_chart
from installer.collect.context import BuildContext
from installer.render.gate import plan_images
from installer.render.helm import k3s_kube_version, render_chart


def fetch(ctx: BuildContext) -> list[Artifact]:
    spec, layout, opts = ctx.spec, ctx.layout, ctx.opts
    kube_version = k3s_kube_version(spec)
    rendered: dict[str, list[dict]] = {}
    for c in spec.charts:
        key = chart_key(c.name, c.version)
        res = fetch_chart(c, layout.charts, layout.tmp, ctx.old_lock.charts.get(key), enforce_lock=opts.locked,
                          base_dir=ctx.base_dir)
        (ctx.progress.counters.fetched if res.fetched else ctx.progress.counters.reused)(res.size)
        ctx.chart_results[c.name] = res
        ctx.new_lock.charts[key] = res.lock_sha256
        rendered[c.name] = render_chart(c.name, c.version, res.path, c.values, c.namespace, kube_version, c.releaseName)
        ctx.produced(res.path, res.sha256)
    ctx.needed_by = plan_images(spec, rendered).needed
    check_registries(spec, ctx.needed_by)
    for ref, charts in sorted(chart_only_images(spec, ctx.needed_by).items()):
        ctx.notes.append(f"image {ref} came only from chart discovery ({', '.join(charts)}); it will be signed with the site key")
    return []


def artifacts(ctx: BuildContext) -> list[Artifact]:
    out = []
    for c in ctx.spec.charts:
        cres = ctx.chart_results[c.name]
        imgs = sorted(ref for ref, charts in ctx.needed_by.items() if c.name in charts)
        out.append(Artifact("chart", c.name, ctx.layout.rel(cres.path), cres.size, cres.sha256,
                            ref=f"{c.repo}/{c.name}:{c.version}",
                            meta={"version": c.version, "repo": c.repo, "images": imgs,
                                  "namespace": c.namespace, "releaseName": c.releaseName or c.name}))
    return out
