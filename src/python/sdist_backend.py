# Prints the build backend an sdist on PyPI declares (build-system.build-backend in its
# pyproject.toml), without building anything: the sdist is found through the index's
# JSON simple API (PEP 691). argv: name version. Prints "setuptools (legacy)" for an
# sdist without one, "unknown" when it cannot tell.
import io
import json
import re
import sys
import tarfile
import urllib.request
import zipfile

def normalized(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def is_sdist_of(filename, name, version):
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            project, _, file_version = filename[: -len(suffix)].rpartition("-")
            return normalized(project) == normalized(name) and file_version == version
    return False


name, version = sys.argv[1], sys.argv[2]
try:
    request = urllib.request.Request(f"https://pypi.org/simple/{normalized(name)}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    url = next(f["url"] for f in files if is_sdist_of(f["filename"], name, version))
    with urllib.request.urlopen(url, timeout=300) as response:
        data = io.BytesIO(response.read())
    if url.endswith(".zip"):
        archive = zipfile.ZipFile(data)
        names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/pyproject.toml")]
        text = archive.read(names[0]).decode() if names else ""
    else:
        archive = tarfile.open(fileobj=data)
        members = [m for m in archive.getmembers() if m.name.count("/") == 1 and m.name.endswith("/pyproject.toml")]
        text = archive.extractfile(members[0]).read().decode() if members else ""
    found = re.search(r"""build-backend\s*=\s*["']([^"']+)["']""", text)
    print(found.group(1) if found else "setuptools (legacy)")
except Exception:
    print("unknown")
