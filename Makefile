# convertkit tasks. Each target sets itself up on a fresh machine: it creates .venv and installs
# convertkit with its extras the first time (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm clang valgrind
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test toolchain fixtures fixtures-digits fixtures-mxnet bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

## toolchain: the C compilers, the Cortex-M cross toolchain, qemu and valgrind (Debian packages)
toolchain:
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; }

## demo: the main job on a shipped fixture: a TensorFlow SavedModel to an int8 C bundle, compiled and run,
## its outputs printed beside TensorFlow's
demo: $(STAMP) toolchain
	$(VENV)/bin/convertkit fixtures/tf/digits_cnn --to c-bundle -o out/digits_bundle \
	    --quantize int8 --calibration fixtures/tf/digits_calibration.npz --verify

## test: the whole test suite (prints the skip count; CI installs every optional runtime)
test: $(STAMP) toolchain
	$(PY) -m pytest -n 2 -q

## fixtures: regenerate fixtures/ (see fixtures/README.md)
fixtures: $(STAMP)
	$(PY) fixtures/make_onnx_fixtures.py
	$(PY) fixtures/make_caffe2_fixtures.py
	$(PY) fixtures/make_tf_fixtures.py

## fixtures-digits: the C bundle accuracy fixture (trains on scikit-learn's digits; sklearn is needed here only)
fixtures-digits: $(STAMP)
	$(PY) -m pip install --quiet "scikit-learn==1.9.1"
	$(PY) fixtures/make_digits_fixture.py

## fixtures-mxnet: regenerate fixtures/mxnet/ in a venv of its own (mxnet 1.9.1 needs numpy < 1.24)
fixtures-mxnet:
	test -x .venv-mxnet/bin/python || $(PYTHON) -m venv .venv-mxnet
	.venv-mxnet/bin/python -m pip install --quiet "mxnet==1.9.1" "numpy<1.24"
	.venv-mxnet/bin/python fixtures/make_mxnet_fixtures.py

## bench: benchmarks against peer tools (figures, not pass/fail)
bench: $(STAMP)
	$(PY) bench/bench_onnx_scale.py
	$(PY) bench/bench_passes.py
	$(PY) bench/bench_tf_to_onnx.py
	$(PY) bench/bench_c_bundle.py
	$(PY) bench/bench_tflite.py

clean:
	rm -rf $(VENV) out build *.egg-info
