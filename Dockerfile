# ucd-gateway: the GraphQL gateway, on the embedded local UCD unless
# UCD_GATEWAY_UCD_BASE_URL (plus UCD_GATEWAY_PARTNER and UCD_GATEWAY_TOKEN) is set.
# It listens on 0.0.0.0, so it refuses to start without callers' credentials
# (UCD_GATEWAY_API_KEYS_FILE or UCD_GATEWAY_JWT_JWKS_URL; README, Production), unless
# UCD_GATEWAY_ALLOW_ANONYMOUS=true:
#   docker build -t ucd-gateway .
#   docker run -p 8000:8000 -v ucd-data:/data -e UCD_GATEWAY_API_KEYS_FILE=... ucd-gateway
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the package needs to build: the image does not carry tests or benches.
# GraphiQL's files are package data (gateway/graphiql/static): no CDN at run time.
COPY pyproject.toml README.md ./
COPY gateway ./gateway
# The parquet extra (pyarrow): the embedded local UCD writes startExport(format: PARQUET)
# files with it; without it such an export is refused.
RUN pip install ".[parquet]" \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin gateway \
    && mkdir -p /data \
    && chown gateway /data

USER gateway

# Bind on every interface inside the container; the embedded local UCD stays on
# 127.0.0.1 and keeps its SQLite data on the /data volume across restarts.
ENV UCD_GATEWAY_HOST=0.0.0.0 \
    UCD_GATEWAY_PORT=8000 \
    UCD_GATEWAY_LOCAL_UCD_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000

# slim has no curl: ask /healthz with the standard library.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('UCD_GATEWAY_PORT', '8000')}/healthz\", timeout=2)"]

ENTRYPOINT ["ucd-gateway"]
CMD ["serve"]
