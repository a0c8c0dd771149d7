# convertkit tasks. Each target sets itself up on a fresh machine: it creates .venv and installs
# convertkit with its extras the first time (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test fixtures fixtures-mxnet bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

## demo: the main job on a shipped fixture: a TensorFlow SavedModel to ONNX, its outputs in onnxruntime
## printed beside TensorFlow's (becomes TensorFlow -> C bundle, compiled and run, when that backend lands)
demo: $(STAMP)
	$(VENV)/bin/convertkit fixtures/tf/mobilenet_v2 --to onnx -o out/mobilenet_v2.onnx --verify

## test: the whole test suite (prints the skip count; CI installs every optional runtime)
test: $(STAMP)
	$(PY) -m pytest -n 2 -q

## fixtures: regenerate fixtures/ (see fixtures/README.md)
fixtures: $(STAMP)
	$(PY) fixtures/make_onnx_fixtures.py
	$(PY) fixtures/make_caffe2_fixtures.py
	$(PY) fixtures/make_tf_fixtures.py

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

clean:
	rm -rf $(VENV) out build *.egg-info
