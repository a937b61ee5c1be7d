#!/usr/bin/env bash
# Create .venv and install mmwsss with the exact versions of
# requirements/lock.txt (the package metadata itself has version ranges).
#
# Idempotent: a stamp file keyed on the requirement files (the lock file
# included) means a second run installs and builds nothing. mmcv 2.1.0 is
# taken from a prebuilt wheel in ../shared/wheels (or $MMWSSS_WHEELS) when
# present, otherwise it is compiled from PyPI's sdist with its C++ ops (35+
# minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
WHEELS=${MMWSSS_WHEELS:-$ROOT/../shared/wheels}
LOCK=requirements/lock.txt
key=$(cat requirements/*.txt "$LOCK" setup.py tools/misc/setup_venv.sh |
  sha1sum | cut -c1-12)
stamp=$VENV/.mmwsss-installed-$key
if [ -f "$stamp" ]; then
  exit 0
fi
echo "[setup] creating $VENV (one-off; re-runs are no-ops)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }
pin() { grep -i "^$1==" "$LOCK" | head -n1; }
pip install -q "$(pin setuptools)" "$(pin wheel)"
mmcv_pin=$(pin mmcv)
if ls "$WHEELS"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  echo "[setup] mmcv 2.1.0 from prebuilt wheel in $WHEELS"
  pip install -q --find-links "$WHEELS" -r "$LOCK"
else
  echo "[setup] no prebuilt mmcv wheel: compiling mmcv 2.1.0 with ops from"
  echo "[setup] the PyPI sdist. This takes 35+ minutes on 2 cores."
  grep -iv '^mmcv==' "$LOCK" > "$VENV/lock-without-mmcv.txt"
  pip install -q -r "$VENV/lock-without-mmcv.txt" ninja psutil
  wrap=$VENV/bin/cxx-std20
  cat > "$wrap" <<'WRAP'
#!/usr/bin/env bash
# mmcv's setup.py forces -std=c++14/17; torch >= 2.10 headers need C++20.
args=()
for a in "$@"; do
  case "$a" in -std=c++14|-std=c++17) args+=(-std=c++20) ;; *) args+=("$a") ;; esac
done
exec "${REAL_CXX:-g++}" "${args[@]}"
WRAP
  chmod +x "$wrap"
  CXX=$wrap MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} \
    pip install --no-build-isolation "$mmcv_pin"
fi
# `setup.py develop` (--no-use-pep517): an egg-link to this folder, so that
# mim finds tools/ and configs/ through mmwsss/.mim (a PEP 660 editable
# install hides the source folder from mim). pip >= 25.3 has no legacy
# editable mode: then PEP 660, and `mim train mmwsss` cannot find the tools.
pip install -q --no-build-isolation --no-use-pep517 --no-deps -e . ||
  pip install -q --no-build-isolation --no-deps -e .
# the locked versions satisfy the ranges of setup.py
pip check
"$VENV/bin/python" -c "import mmcv.ops, mmseg.models, mmpretrain.models, pydensecrf.densecrf, pycocotools.mask, mmwsss; print('[setup] ok: mmcv', mmcv.__version__)"
rm -f "$VENV"/.mmwsss-installed-*
touch "$stamp"
