# The textflow pipeline image for Kubeflow Pipelines: Python 3.10, the pinned stack of
# constraints.txt, Keras 2 (TF_USE_LEGACY_KERAS=1), and the project installed from /opt/textflow
# (pipeline/kubeflow.py names these paths). Every component of a compiled pipeline runs in it.
#   CPU:  make image      (docker build -t textflow:latest .)
#   GPU:  make image-gpu  (Ubuntu 22.04's Python 3.10 and TensorFlow's CUDA build, tensorflow[and-cuda];
#                          the nodes need only the NVIDIA driver)
ARG BASE=python:3.10-slim-bookworm
FROM ${BASE}
ARG VARIANT=cpu

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 TF_USE_LEGACY_KERAS=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH

# A C/C++ compiler: crcmod and pyfarmhash (Beam's dependencies) install from source on Python 3.10.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && if ! command -v python3.10 >/dev/null; then \
         apt-get install -y --no-install-recommends python3.10 python3.10-venv python3.10-dev; \
       fi \
    && rm -rf /var/lib/apt/lists/* \
    && python3.10 -m venv /opt/venv \
    && pip install --no-cache-dir --upgrade pip==24.2 setuptools==75.1.0 wheel==0.44.0

WORKDIR /opt/textflow
COPY pyproject.toml constraints.txt README.md ./
COPY pipeline ./pipeline
COPY operations ./operations
COPY tasks ./tasks
COPY components ./components
COPY models ./models
COPY schemas ./schemas

# Editable, as `make setup` installs it: the code runs from /opt/textflow, where schemas/ is too.
RUN pip install --no-cache-dir -c constraints.txt -e . \
    && if [ "$VARIANT" = gpu ]; then \
         pip install --no-cache-dir -c constraints.txt "tensorflow[and-cuda]==2.16.2"; \
       fi \
    && python -c "import tf_keras, tensorflow_text, tfx, pipeline.pipeline; print('textflow image:', tfx.__version__)"
