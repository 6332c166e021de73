# Entry points. `make help` lists them.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MOLECULE_DISTRO ?= debian12
# The suite runs scenarios on both; the sandbox only on MOLECULE_DISTRO.
TEST_DISTROS ?= debian12 debian13
HOSTPREP := python3 molecule/_harness/hostprep.py all
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0

.PHONY: help venv hostprep lint unit molecule test sandbox sandbox-down bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

venv: $(VENV)/.installed ## Create .venv with the pinned toolchain

hostprep: ## Install Podman and its network stack, build the suite's test images, configure Podman if needed
	$(HOSTPREP) $(foreach d,$(TEST_DISTROS),--distro $(d))

lint: venv ## yamllint + ansible-lint (production profile) + ruff check and ruff format --check
	SUITE_STEPS=lint $(PY) molecule/_harness/suite.py

unit: venv ## Python unit tests (URI filter, SFTP plugin against a real sshd)
	SUITE_STEPS=unit $(PY) molecule/_harness/suite.py

molecule: venv hostprep ## Every Molecule scenario (SCENARIOS=... to choose)
	SUITE_STEPS=molecule $(PY) molecule/_harness/suite.py

test: venv hostprep ## The whole suite: lint, unit tests, every Molecule scenario
	$(PY) molecule/_harness/suite.py

sandbox: venv ## Provision a local sandbox of Podman hosts with site.yml and print the URL
	$(HOSTPREP) --distro $(MOLECULE_DISTRO)
	$(VENV)/bin/ansible-playbook -i inventory/sandbox playbooks/sandbox.yml
	$(VENV)/bin/ansible-playbook -i inventory/sandbox site.yml
	$(VENV)/bin/ansible-playbook -i inventory/sandbox playbooks/sandbox_report.yml

sandbox-down: venv ## Remove the sandbox hosts
	$(VENV)/bin/ansible-playbook -i inventory/sandbox playbooks/sandbox.yml -e sandbox_state=absent

bench: venv ## Benchmarks (writes benchmarks/results/)
	$(HOSTPREP) --distro $(MOLECULE_DISTRO)
	$(PY) benchmarks/run.py

clean: ## Remove the venv and caches (not the test images)
	rm -rf $(VENV) .cache
