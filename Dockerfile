# The worker image: the engine's code and its runtime dependencies, nothing for tests.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY config_files config_files
COPY models models
COPY workflows workflows
COPY activities activities
COPY starter starter
COPY store store
COPY config config
COPY worker.py ./
RUN pip install --no-cache-dir .
USER nobody
CMD ["python", "worker.py"]
