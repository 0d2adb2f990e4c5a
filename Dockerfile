# The decision engine as one image: the API (`crm serve`) and the batch jobs (`crm features ...`, `crm train`,
# `crm score batch`) run from it with different commands. See README "Deploying beyond one machine".
FROM python:3.11-slim
# libgomp1: LightGBM; a Java runtime: the Spark engine (CRM_COMPUTE_ENGINE=spark) for the batch jobs
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 default-jre-headless \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY config ./config
COPY cli ./cli
COPY features ./features
COPY training ./training
COPY rules ./rules
COPY model_registry ./model_registry
COPY service ./service
RUN pip install --no-cache-dir -c constraints.txt .
ENV CRM_HOME=/var/lib/crm CRM_HOST=0.0.0.0 CRM_PORT=8000 CRM_WORKERS=2
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["crm", "serve"]
