"""``netlapse render RUN VIEW --out FILE``: the command behind the CLI's ``render``."""

from __future__ import annotations

from pathlib import Path

from ..errors import NetlapseError

__all__ = ["render_command", "VIEW_HELP", "add_render_parser"]

VIEW_HELP = {
    "trajectories": "chosen weights over steps (--stream; a seeded sample of a big tensor)",
    "weight_images": "each output unit's incoming weights as an image (--stream, --step)",
    "layer_profile": "mean |grad| and |activation| per layer (--step; --source probe: one example)",
    "distributions": "a stream's histogram over steps as a heatmap with stats (--stream)",
    "function_fit": "output on the probe inputs vs the target curve (--layer, --step)",
    "hidden_space": "a 2-unit layer: data, warped grid, decision boundary, regions (--layer)",
    "compare": "--view V for several runs side by side: netlapse render A B compare --view V",
}
STILL = (".png", ".svg", ".pdf")
MOVING = (".gif", ".mp4", ".html")


def add_render_parser(sub) -> None:
    import argparse

    views = "\n".join(f"  {k:<14} {v}" for k, v in VIEW_HELP.items())
    p = sub.add_parser(
        "render", help="draw a view of a recorded run to PNG, SVG, GIF, MP4 or HTML",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Draw a view of a recorded run. The --out suffix picks the format: .png, "
                    ".svg, .pdf (one step) or .gif, .mp4, .html (an animation over steps; the "
                    ".html file is an offline player with play/pause and a step slider).",
        epilog=f"views:\n{views}\n\nexamples:\n"
               "  netlapse render runs/mnist weight_images --stream weights/0.weight --out w.png\n"
               "  netlapse render runs/rings hidden_space --steps 0:2000:100 --out rings.mp4\n"
               "  netlapse render runs/a runs/b compare --view function_fit --out sweep.html")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s); several only with compare")
    p.add_argument("view", choices=list(VIEW_HELP), metavar="VIEW", help="one of: " + ", ".join(VIEW_HELP))
    p.add_argument("--out", "-o", required=True, help="output file; its suffix picks the format")
    p.add_argument("--stream", help="stream name, e.g. weights/0.weight (see `netlapse info RUN`)")
    p.add_argument("--layer", help="layer name for function_fit / hidden_space (default: automatic)")
    p.add_argument("--step", type=int, default=-1, help="the step of a still picture (default: last)")
    p.add_argument("--steps", help="steps of an animation as A:B:N (first, last, number of frames)")
    p.add_argument("--frames", type=int, default=100, help="most frames in an animation (default: %(default)s)")
    p.add_argument("--fps", type=float, default=10, help="frames per second (default: %(default)s)")
    p.add_argument("--source", choices=["stats", "probe"], default="stats",
                   help="layer_profile: batch stats, or one probe example")
    p.add_argument("--units-axis", type=int, help="weight_images: the axis of output units")
    p.add_argument("--view", dest="inner", choices=[v for v in VIEW_HELP if v != "compare"],
                   help="compare: the view to draw for each run")
    p.set_defaults(func=render_command)


def _kwargs(view: str, args, moving: bool) -> dict:
    need_stream = view in ("weight_images", "distributions")
    if need_stream and not args.stream:
        raise NetlapseError(f"{view} needs --stream, e.g. --stream weights/0.weight "
                            "(list the streams with `netlapse info RUN`).")
    when = (args.steps if moving else args.step)
    kw: dict = {}
    if view == "trajectories":
        kw = {"stream": args.stream, "steps": args.steps}
    elif view == "weight_images":
        kw = {"stream": args.stream, "units_axis": args.units_axis}
        kw["steps" if moving else "step"] = when
    elif view == "layer_profile":
        kw = {"source": args.source, ("steps" if moving else "step"): when}
    elif view == "distributions":
        kw = {"stream": args.stream, "steps": args.steps}
    elif view in ("function_fit", "hidden_space"):
        kw = {"layer": args.layer, ("steps" if moving else "step"): when}
    return kw


def render_command(args) -> int:
    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in STILL + MOVING:
        raise NetlapseError(f"--out {out}: use a file ending in one of {', '.join(STILL + MOVING)}.")
    moving = suffix in MOVING
    if args.view != "compare" and len(args.runs) > 1:
        raise NetlapseError(f"{args.view} draws one run; to put several side by side use "
                            f"`netlapse render {' '.join(args.runs)} compare --view {args.view}`.")
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.view == "compare":
        if not args.inner:
            raise NetlapseError("compare needs --view, e.g. --view function_fit.")
        kw = _kwargs(args.inner, args, moving)
        key = "step" if args.inner in ("weight_images", "layer_profile") else "steps"
        kw.pop("step", None)
        kw.pop("steps", None)
        if moving:
            kw[key] = args.steps   # a still picks --step on the shared step axis instead
        return _write(lambda: _compare(args, kw, moving), out, moving, args)
    return _write(lambda: _single(args, kw=_kwargs(args.view, args, moving), moving=moving), out, moving, args)


def _single(args, kw, moving):
    from .. import animate, plot

    kw = {k: v for k, v in kw.items() if v is not None or k in ("steps",)}
    if moving:
        return getattr(animate, args.view)(args.runs[0], max_frames=args.frames, fps=args.fps, **kw)
    return getattr(plot, args.view)(args.runs[0], **kw)


def _compare(args, kw, moving):
    from .. import animate, plot

    kw = {k: v for k, v in kw.items() if v is not None or k in ("step", "steps")}
    if moving:
        if "step" in kw:
            kw["step"] = kw.pop("step")
        return animate.compare(args.runs, args.inner, fps=args.fps, max_frames=args.frames, **kw)
    return plot.compare(args.runs, args.inner, step=args.step, **kw)


def _write(make, out: Path, moving: bool, args) -> int:
    obj = make()
    if moving:
        obj.save(out, fps=args.fps)
        print(f"wrote {out} ({len(obj)} frames)")
    else:
        from ..render.mpl import save_figure

        save_figure(obj, out)
        print(f"wrote {out}")
    return 0
