"""Animations to GIF (Pillow) and MP4 (the ffmpeg binary bundled with imageio-ffmpeg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._progress import progress
from .mpl import FrameRenderer
from .spec import frame_count, frame_spec

__all__ = ["iter_frames", "save_gif", "save_mp4", "ffmpeg_exe"]


def iter_frames(view, dpi: int = 100, desc: str = "rendering"):
    """Yield each frame of ``view`` drawn with matplotlib as an ``(H, W, 3)`` uint8 array."""
    renderer = FrameRenderer(dpi)
    n = frame_count(view)
    size = None
    with progress(total=n, desc=desc, unit="frame") as bar:
        for i in range(n):
            rgb = renderer.render(frame_spec(view, i))
            if size is None:
                size = rgb.shape
            elif rgb.shape != size:   # keep every frame the first frame's size
                rgb = _fit(rgb, size)
            bar.update()
            yield rgb


def _fit(rgb: np.ndarray, shape) -> np.ndarray:
    out = np.full(shape, 255, np.uint8)
    h, w = min(shape[0], rgb.shape[0]), min(shape[1], rgb.shape[1])
    out[:h, :w] = rgb[:h, :w]
    return out


def save_gif(view, path, fps: float = 10, dpi: int = 100) -> Path:
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("GIF export needs Pillow: pip install 'netlapse[viz]'") from exc
    images = [Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
              for rgb in iter_frames(view, dpi, desc=f"GIF {Path(path).name}")]
    path = Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(int(1000 / fps), 20),
                   loop=0, optimize=False, disposal=1)
    return path


def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped in the imageio-ffmpeg wheel (never a system ffmpeg)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise ImportError("MP4 export needs imageio-ffmpeg (it bundles ffmpeg): "
                          "pip install 'netlapse[viz]'") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def save_mp4(view, path, fps: float = 10, dpi: int = 100) -> Path:
    """H.264 MP4 (yuv420p, plays in browsers). Frames are padded with white to even sizes."""
    import imageio_ffmpeg

    ffmpeg_exe()
    path = Path(path)
    writer = None
    try:
        for rgb in iter_frames(view, dpi, desc=f"MP4 {path.name}"):
            if writer is None:
                h, w = rgb.shape[0] + rgb.shape[0] % 2, rgb.shape[1] + rgb.shape[1] % 2
                writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264",
                                                     pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
                                                     macro_block_size=2, quality=7,
                                                     ffmpeg_log_level="error")
                writer.send(None)
            writer.send(np.ascontiguousarray(_fit(rgb, (h, w, 3))))
    finally:
        if writer is not None:
            writer.close()
    return path
