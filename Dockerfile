# The worker image: the engine's code and exactly the runtime dependencies the tests ran with
# (requirements.lock, made by `make lock` from pyproject.toml), nothing for tests. The same
# image runs the migrations (`python -m starter db upgrade`) and the codec server.
FROM python:3.11.7-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY domain domain
COPY config_files config_files
COPY models models
COPY workflows workflows
COPY activities activities
COPY starter starter
COPY store store
COPY config config
COPY worker.py ./
# --no-deps: every dependency came from the lock above; this installs only the project.
RUN pip install --no-cache-dir --no-deps .
USER nobody
EXPOSE 9464 9465 8888
CMD ["python", "worker.py"]
