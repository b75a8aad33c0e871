"""A registry that speaks the OCI distribution API, through python-dxf.

python-dxf does the HTTP: blob HEAD, upload (POST then one monolithic PUT with the digest),
cross-repository mounts, manifest GET/PUT/DELETE asking with Docker's and OCI's media types
together, and Basic or Bearer (token) authentication answering the registry's
``WWW-Authenticate`` challenge. This module maps its answers to relman's errors.

Deleting by tag deletes the manifest the tag names (and so its other tags): the distribution
API deletes manifests by digest (Docker's registry 2.8 cannot untag).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import BinaryIO

import requests
from dxf import DXF, DXFBase
from dxf import exceptions as dxf_errors
from relman_common.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RelmanError,
    Unauthenticated,
    Unavailable,
)

from relman_release.images.base import REGISTRY_UNAVAILABLE
from relman_release.images.oci import Manifest
from relman_release.images.reference import DIGEST, Registry

# Seconds to connect and to wait for each answer; a blob upload's body is not bounded.
TIMEOUT = 60.0


class RegistryStore:
    """An :class:`~relman_release.images.store.ImageStore` on a registry."""

    def __init__(
        self, registry: Registry, username: str = "", password: str = "", timeout: float = TIMEOUT
    ) -> None:
        self.registry = registry
        self.host = registry.host
        self._username = username
        self._password = password
        self._timeout = timeout
        # A DXF client keeps its token: one per repository and thread.
        self._local = threading.local()

    def describe(self) -> str:
        return f"registry {self.host}"

    def _client(self, repository: str) -> DXF:
        clients: dict[str, DXF] = self._local.__dict__.setdefault("clients", {})
        if repository not in clients:
            clients[repository] = DXF(
                self.host,
                repository,
                auth=self._authenticate,
                insecure=self.registry.insecure,
                timeout=self._timeout,
            )
        return clients[repository]

    def _authenticate(self, client: DXFBase, response: requests.Response) -> None:
        if self._username:
            client.authenticate(self._username, self._password, response=response)
        else:
            client.authenticate(response=response)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Registry answers as relman errors; ``what`` names the thing asked for."""
        try:
            yield
        except RelmanError:
            raise
        except (requests.ConnectionError, requests.Timeout) as err:
            raise Unavailable(
                f"registry {self.host} cannot be reached ({type(err).__name__}): is it running?",
                reason=REGISTRY_UNAVAILABLE,
            ) from None
        except dxf_errors.DXFUnauthorizedError:
            hint = "check" if self._username else "set"
            raise Unauthenticated(
                f"registry {self.host} refused access to {what}: {hint} "
                "RELMAN_REGISTRY_USERNAME and RELMAN_REGISTRY_PASSWORD"
            ) from None
        except dxf_errors.DXFAuthInsecureError:
            raise Unauthenticated(
                f"registry {self.host} asks for credentials over plain HTTP, which are not "
                "sent: give it TLS (https://) or turn its authentication off"
            ) from None
        except requests.HTTPError as err:
            raise self._status_error(err.response, what) from None
        except dxf_errors.DXFError as err:
            raise InvalidArgument(f"registry {self.host}: {what}: {err}") from None

    def _status_error(self, response: requests.Response | None, what: str) -> RelmanError:
        status = response.status_code if response is not None else 0
        detail = _registry_message(response)
        if status == 404:
            return NotFound(f"{what} is not in registry {self.host}{detail}")
        if status == 403:
            return PermissionDenied(f"registry {self.host} denied access to {what}{detail}")
        if status >= 500:
            return Unavailable(
                f"registry {self.host} failed on {what} (HTTP {status}){detail}",
                reason=REGISTRY_UNAVAILABLE,
            )
        return InvalidArgument(f"registry {self.host} refused {what} (HTTP {status}){detail}")

    # --- blobs ----------------------------------------------------------------------------

    def has_blob(self, repository: str, digest: str) -> bool:
        try:
            with self._errors(f"blob {digest}"):
                self._client(repository).blob_size(digest)
        except NotFound:
            return False
        return True

    def open_blob(self, repository: str, digest: str) -> Iterator[bytes]:
        what = f"blob {digest} of {repository}"
        with self._errors(what):
            chunks = self._client(repository).pull_blob(digest, chunk_size=1024 * 1024)
        return self._checked(chunks, what)  # type: ignore[arg-type]

    def _checked(self, chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
        with self._errors(what):
            yield from chunks

    def put_blob(self, repository: str, digest: str, source: BinaryIO) -> None:
        with self._errors(f"upload of blob {digest} to {repository}"):
            # A file object: requests sends it with its length, in one PUT.
            self._client(repository).push_blob(data=source, digest=digest, check_exists=False)  # type: ignore[arg-type]

    def mount_blob(self, repository: str, digest: str, source_repository: str) -> bool:
        try:
            with self._errors(f"blob {digest}"):
                self._client(repository).mount_blob(source_repository, digest)
        except (dxf_errors.DXFMountFailed, RelmanError):
            return False
        return True

    # --- manifests ------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        what = f"image {self.host}/{repository}{_sep(reference)}{reference}"
        with self._errors(what):
            _, response = self._client(repository).get_manifest_and_response(reference)
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        manifest = Manifest(response.content, media_type)
        if not media_type or media_type == "application/json":
            manifest = Manifest(response.content, str(manifest.json.get("mediaType", "")))
        if DIGEST.fullmatch(reference) and manifest.digest != reference:
            raise InvalidArgument(f"registry {self.host} sent a manifest that is not {reference}")
        return manifest

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        what = f"manifest {self.host}/{repository}{_sep(reference)}{reference}"
        with self._errors(what):
            # python-dxf sends the manifest's own mediaType as its Content-Type; canonical JSON
            # is ASCII, so the text is sent as exactly these bytes.
            self._client(repository).set_manifest(reference, manifest.data.decode("ascii"))

    def delete_manifest(self, repository: str, reference: str) -> None:
        with self._errors(f"image {self.host}/{repository}{_sep(reference)}{reference}"):
            self._client(repository).del_alias(reference)


def _sep(reference: str) -> str:
    return "@" if DIGEST.fullmatch(reference) else ":"


def _registry_message(response: requests.Response | None) -> str:
    """The registry's own words (``errors[].message``), as ``: message`` or ``""``."""
    if response is None:
        return ""
    try:
        errors = response.json().get("errors") or []
        words = "; ".join(str(e.get("message") or e.get("code")) for e in errors)
    except (ValueError, AttributeError):
        words = ""
    return f": {words}" if words else ""
