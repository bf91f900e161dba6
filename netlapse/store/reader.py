"""Reading a run: only what ``commit.json`` publishes, safe while the run is being written."""

from __future__ import annotations

import os
import socket
from functools import cached_property
from pathlib import Path

import numpy as np

from .._jsonio import read_json
from .._stats import HIST_BINS, STAT_NAMES
from ..errors import (CorruptRunError, NotARunError, StreamNotFoundError,
                      nearest_names)
from .layout import COMMIT_FILE, DATA_DIR, FORMAT_VERSION, METRICS_GROUP, RUN_FILE, metric_key
from .stream import Histograms, Stream, _rows_of

__all__ = ["RunReader", "Stream", "Histograms", "run_status"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_status(manifest: dict) -> str:
    """``finished``, ``failed`` (an exception, or recording failed), ``interrupted`` (Ctrl-C),
    ``running`` (its writer is alive) or ``not closed`` (it died before close)."""
    status = manifest.get("status", "not closed")
    if status != "running":
        return status
    if manifest.get("host") == socket.gethostname() and not _pid_alive(int(manifest.get("pid", -1))):
        return "not closed"
    return "running"


class RunReader:
    """A read-only view of a run folder. ``refresh()`` picks up steps committed since."""

    def __init__(self, path):
        self.path = Path(path)
        if not (self.path / RUN_FILE).exists():
            if (self.path / COMMIT_FILE).exists() or (self.path / DATA_DIR).is_dir():
                raise CorruptRunError(
                    f"{self.path / RUN_FILE} is missing, but {self.path} holds recorded data "
                    f"({COMMIT_FILE}, {DATA_DIR}/): the run's manifest was deleted or lost. "
                    f"Restore {RUN_FILE} from a backup or a copy of the run.")
            hint = ""
            if self.path.is_dir():
                runs = sorted(p.parent.name for p in self.path.glob("*/" + RUN_FILE))[:5]
                if runs:
                    hint = f" It holds runs: {', '.join(runs)}."
            elif not self.path.exists():
                raise NotARunError(f"{self.path} does not exist.")
            raise NotARunError(f"{self.path} is not a netlapse run (no {RUN_FILE}).{hint}")
        self._store = None
        self._arrays: dict = {}
        self.refresh()

    def refresh(self) -> "RunReader":
        self.manifest = read_json(self.path / RUN_FILE)
        version = self.manifest.get("format_version")
        if not isinstance(version, int):
            raise CorruptRunError(f"{self.path / RUN_FILE} has no integer format_version.")
        if version > FORMAT_VERSION:
            raise CorruptRunError(
                f"{self.path / RUN_FILE} has format version {version}, newer than this netlapse "
                f"reads ({FORMAT_VERSION}). Upgrade netlapse: pip install -U netlapse.")
        commit_path = self.path / COMMIT_FILE
        self.commit = read_json(commit_path) if commit_path.exists() else {}
        cversion = self.commit.get("format_version", version)
        if not isinstance(cversion, int) or cversion > FORMAT_VERSION:
            raise CorruptRunError(
                f"{commit_path} has format version {cversion!r}, newer than this netlapse reads "
                f"({FORMAT_VERSION}). Upgrade netlapse: pip install -U netlapse.")
        lengths = self.commit.get("lengths", {})
        metas = self.manifest.get("streams", {})
        if not isinstance(lengths, dict) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in lengths.values()):
            raise CorruptRunError(f"{commit_path}: 'lengths' should map stream names to step "
                                  "counts; the file is damaged. Restore it or remove the run.")
        if not isinstance(metas, dict) or not all(isinstance(m, dict) for m in metas.values()):
            raise CorruptRunError(f"{self.path / RUN_FILE}: 'streams' should map stream names to "
                                  "their descriptions; the file is damaged. Restore it.")
        self._streams = {name: Stream(self, name, metas[name], int(n))
                         for name, n in lengths.items() if name in metas}
        self._arrays.clear()
        self.__dict__.pop("metrics", None)
        return self

    # ------------------------------------------------------------------ arrays
    def _array(self, key: str):
        arr = self._arrays.get(key)
        if arr is None:
            import zarr
            from zarr.storage import LocalStore

            if self._store is None:
                self._store = LocalStore(self.path / DATA_DIR, read_only=True)
            try:
                arr = zarr.open_array(store=self._store, path=key, mode="r")
            except Exception as exc:  # zarr raises several types for missing/bad metadata
                raise CorruptRunError(f"{self.path / DATA_DIR / key} cannot be read: {exc}") from exc
            self._arrays[key] = arr
        return arr

    def _read(self, key: str, sel, length: int):
        """Rows ``sel`` (an index or a slice) of array ``key``, which must hold ``length`` rows.

        A damaged chunk raises CorruptRunError naming its file; other arrays stay readable.
        """
        arr = self._array(key)
        if arr.shape[0] < length:
            raise CorruptRunError(
                f"{self.path / DATA_DIR / key / 'zarr.json'} says {arr.shape[0]} rows but "
                f"{COMMIT_FILE} publishes {length}; the array metadata is damaged.")
        try:
            self._check_blosc_sizes(key, arr, sel, length)
            if isinstance(sel, np.ndarray):
                return arr.get_orthogonal_selection((sel,))
            return arr[sel]
        except Exception as exc:  # noqa: BLE001 - codecs raise RuntimeError, ValueError, ...
            raise CorruptRunError(self._damage_message(key, arr, _rows_of(sel, length), exc)) from exc

    def _check_blosc_sizes(self, key: str, arr, sel, length: int) -> None:
        """Blosc stores a chunk that does not compress as is, and decodes such a chunk cut
        short without an error (reading past its end). Each blosc chunk's header holds its
        stored size: a file of another size is damaged (ValueError, reported like any other)."""
        if not _is_blosc(arr):
            return
        rows = _rows_of(sel, length)
        if not len(rows):
            return
        per = arr.chunks[0]
        tail = (0,) * (arr.ndim - 1)
        for ci in sorted({int(r) // per for r in rows}):
            path = self.path / DATA_DIR / key / arr.metadata.encode_chunk_key((ci,) + tail)
            try:
                with open(path, "rb") as f:
                    head = f.read(16)
                    size = os.fstat(f.fileno()).st_size
            except FileNotFoundError:
                continue   # an absent chunk reads as the fill value (see docs/reliability.md)
            stored = int.from_bytes(head[12:16], "little") if len(head) == 16 else -1
            if stored != size:
                raise ValueError(f"blosc chunk {path.name!r} holds {size} bytes, its header "
                                 f"says {stored}")

    def _damage_message(self, key: str, arr, rows, exc: BaseException) -> str:
        bad = []
        per = arr.chunks[0]
        for ci in sorted({r // per for r in rows}):
            lo = ci * per
            try:
                self._check_blosc_sizes(key, arr, slice(lo, min(lo + per, arr.shape[0])), arr.shape[0])
                arr[lo: min(lo + per, arr.shape[0])]
            except Exception:  # noqa: BLE001
                name = arr.metadata.encode_chunk_key((ci,) + (0,) * (arr.ndim - 1))
                bad.append(f"{self.path / DATA_DIR / key / name} (rows {lo}..{lo + per - 1})")
        where = ", ".join(bad) if bad else str(self.path / DATA_DIR / key)
        return (f"{where} cannot be decoded ({type(exc).__name__}: {exc}); the chunk is truncated "
                "or corrupt. Other streams, and steps in other chunks, are still readable.")

    def verify(self, bar=None) -> list[str]:
        """Decode every committed chunk of every array; return one message per damaged file.

        ``bar``: an optional tqdm progress bar, advanced once per array."""
        keys = [(f"{n}/{k}", s.length) for n, s in self._streams.items()
                for k in ("steps", "stats", "hist") + (("values",) if s.capture == "full" else ())
                if s.length]
        rows = int(self.commit.get("metric_rows", 0))
        if rows:
            keys.append((f"{METRICS_GROUP}/step", rows))
            keys += [(f"{METRICS_GROUP}/{metric_key(m)}", rows) for m in self.commit.get("metric_names", [])]
        problems = []
        if bar is not None:
            bar.reset(total=len(keys))
        for key, length in keys:
            if bar is not None:
                bar.update(1)
            try:
                arr = self._array(key)
                per = arr.chunks[0]
                for lo in range(0, length, per):
                    self._read(key, slice(lo, min(lo + per, length)), length)
            except CorruptRunError as exc:
                problems.append(str(exc))
        return problems

    # ------------------------------------------------------------------ public
    @property
    def name(self) -> str:
        return self.manifest.get("name") or self.path.name

    def __repr__(self) -> str:
        return f"<netlapse run {str(self.path)!r} {self.status}, {len(self._streams)} streams>"

    def _repr_html_(self) -> str:   # notebooks: status, steps, streams, metric sparklines
        from .._display import run_summary_html

        return run_summary_html(self.refresh())

    @property
    def status(self) -> str:
        return run_status(self.manifest)

    @property
    def config(self) -> dict:
        return self.manifest.get("config", {})

    @property
    def model(self) -> dict | None:
        return self.manifest.get("model")

    @property
    def waited_s(self) -> float:
        """Seconds the training thread waited for the writer (backpressure)."""
        return float(self.commit.get("waited_s", 0.0))

    def streams(self, kind: str | None = None) -> list[str]:
        names = sorted(self._streams)
        return [n for n in names if kind is None or n.split("/", 1)[0] == kind]

    def __contains__(self, name: str) -> bool:
        return name in self._streams

    def aliases(self) -> dict[str, str]:
        """Shared parameters' other names: ``{"head.weight": "emb.weight"}`` (one tensor, recorded
        under the second name). With several models on a run the names carry the model's
        ``<name>/`` prefix, as their streams do."""
        out = {}
        models = [("", self.model)] + [(f"{k}/", m) for k, m in
                                       (self.manifest.get("models") or {}).items()]
        for prefix, model in models:
            for alias, name in ((model or {}).get("aliases") or {}).items():
                out[prefix + alias] = prefix + name
        return out

    def __getitem__(self, name: str) -> Stream:
        try:
            return self._streams[name]
        except KeyError:
            kind, _, rest = name.partition("/")
            target = self.aliases().get(rest)
            if target is not None:
                stored = f"{kind}/{target}"
                if stored in self._streams:
                    return self._streams[stored]   # a shared parameter: its one stream
                raise StreamNotFoundError(
                    f"{rest!r} is {target!r} (a shared parameter), stored as {stored!r}, which "
                    f"run {self.path} did not record. List the streams with run.streams() or "
                    "`netlapse info RUN`.") from None
            near = nearest_names(name, self._streams)
            raise StreamNotFoundError(
                f"no stream {name!r} in run {self.path}. Nearest: {', '.join(near) or 'none'}. "
                "List them all with run.streams() or `netlapse info RUN`.") from None

    @property
    def seq(self) -> int:
        """The commit's sequence number: it grows with every commit the writer publishes."""
        return int(self.commit.get("seq", 0))

    @property
    def updated(self) -> float | None:
        """Time (seconds since the epoch) of the last commit, or None before the first."""
        return self.commit.get("time")

    @property
    def created(self) -> float | None:
        """Time (seconds since the epoch) the run was created."""
        return self.manifest.get("created")

    @property
    def framework(self) -> dict | None:
        return self.manifest.get("framework")

    def last_step(self) -> int:
        """The last committed step of any stream or metric (0 when nothing is committed);
        reads one element per stream."""
        ends = [s.step_of(-1) for s in self._streams.values() if s.length]
        if self.metric_rows:
            ends.append(int(self.metric_steps(np.asarray([self.metric_rows - 1]))[0]))
        return max(ends) if ends else 0

    # ------------------------------------------------------------------ metrics, by row
    @property
    def metric_rows(self) -> int:
        """How many metric rows are committed (one per ``run.log`` call; a step may have several)."""
        return int(self.commit.get("metric_rows", 0))

    @property
    def metric_names(self) -> list[str]:
        """The logged metrics' names, in the order they first appeared."""
        return list(self.commit.get("metric_names", []))

    def _metric_read(self, key: str, rows, dtype) -> np.ndarray:
        n = self.metric_rows
        if rows is None:
            rows = slice(0, n)
        if isinstance(rows, slice):
            rows = slice(*rows.indices(n))
            if rows.start >= rows.stop:
                return np.zeros(0, dtype)
        else:
            rows = np.asarray(rows, np.int64)
            if rows.size and (rows.min() < 0 or rows.max() >= n):
                raise IndexError(f"metric rows must be in 0..{n - 1}")
            if not rows.size:
                return np.zeros(0, dtype)
        return np.asarray(self._read(key, rows, n), dtype)

    def metric_steps(self, rows=None) -> np.ndarray:
        """The step of each metric row: all (``rows=None``), a slice, or an int array of rows."""
        return self._metric_read(f"{METRICS_GROUP}/step", rows, np.int64)

    def metric_values(self, name: str, rows=None) -> np.ndarray:
        """One metric's column (float64, NaN where a row did not log it), rows as ``metric_steps``."""
        if name not in self.metric_names:
            near = nearest_names(name, self.metric_names)
            raise StreamNotFoundError(f"no metric {name!r} in run {self.path}. Nearest: "
                                      f"{', '.join(near) or 'none'}.")
        return self._metric_read(f"{METRICS_GROUP}/{metric_key(name)}", rows, np.float64)

    def metric_rows_through(self, step: int) -> int:
        """How many metric rows have a step at or before ``step`` (rows are in step order)."""
        n = self.metric_rows
        if n == 0 or int(self.metric_steps(np.asarray([n - 1]))[0]) <= step:
            return n
        return int(np.searchsorted(self.metric_steps(), step, side="right"))

    @cached_property
    def metrics(self):
        """pandas DataFrame: ``step`` and one column per logged metric, one row per step."""
        import pandas as pd

        data = {"step": self.metric_steps()}
        for name in self.metric_names:
            data[name] = self.metric_values(name)
        df = pd.DataFrame(data)
        if len(df) and df["step"].duplicated().any():
            df = df.groupby("step", as_index=False, sort=True).last()
        return df.reset_index(drop=True)

    def to_xarray(self):
        """An xarray Dataset, lazily backed by the zarr arrays (dask), one variable per array.

        For stream ``S``: ``S/stats`` (dims ``S/step``, ``stat``), ``S/hist`` and, for full
        streams, ``S`` with dims ``S/step``, ``S/dim_0``, ...
        """
        try:
            import dask.array as da
            import xarray as xr
        except ImportError as exc:
            raise ImportError("to_xarray() needs xarray and dask: pip install 'netlapse[xarray]'") from exc
        variables = {}
        coords = {"stat": list(STAT_NAMES), "bin": np.arange(HIST_BINS)}
        for name, s in self._streams.items():
            tdim = f"{name}/step"
            coords[tdim] = s.steps
            n = s.length
            variables[f"{name}/stats"] = xr.Variable(
                (tdim, "stat"), da.from_zarr(self._array(f"{name}/stats"))[:n])
            variables[f"{name}/hist"] = xr.Variable(
                (tdim, "bin"), da.from_zarr(self._array(f"{name}/hist"))[:n])
            if s.capture == "full":
                dims = (tdim,) + tuple(f"{name}/dim_{i}" for i in range(len(s.shape)))
                variables[name] = xr.Variable(dims, da.from_zarr(self._array(f"{name}/values"))[:n])
        return xr.Dataset(variables, coords=coords, attrs={"run": str(self.path), "status": self.status})


def _is_blosc(arr) -> bool:
    from zarr.codecs import BloscCodec

    return any(isinstance(c, BloscCodec) for c in arr.metadata.codecs)
