# The two commands a newcomer runs (README.md): `make demo` and `make test`.
# Both create .venv/ at the repository root and install everything into it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# DDS traffic stays on this machine (see README "Network").
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: demo test venv clean

$(VENV)/.installed: setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools
	# torch first and pinned (constraints.txt): 2.13.0 CPU is on local disk; an open range pulls GBs of CUDA.
	$(PY) -m pip install --quiet -c constraints.txt torch
	$(PY) -m pip install --quiet -c constraints.txt -e ".[ros,dev]"
	touch $@

# `ros2 launch` (launch, launch_ros, ros2cli built from ../shared sources; no pip wheels) for
# the launch tests (test/ros/test_ros_launch_run.py). Tests only: the product does not need it.
$(VENV)/bin/ros2: $(VENV)/.installed
	bash ../shared/ros2_launch/install.sh $(VENV)

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/vggt-uncertainty demo --out demo_out

# Typed core (setup.cfg [mypy]): the numpy core, the data layer and the node's runtime.
TYPED := vggt_uncertainty_ros/geometry vggt_uncertainty_ros/calibration vggt_uncertainty_ros/data vggt_uncertainty_ros/online

test: venv $(VENV)/bin/ros2
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(TYPED)
	$(PY) -m pytest -q test

clean:
	rm -rf $(VENV) demo_out
