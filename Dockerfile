# nt-mcp over HTTPS. Build:  docker build -t nt-mcp .
# Run:    docker run -p 8000:8000 -e NT_JWT_SECRET=... -e NT_PUBLIC_URL=https://mcp.example.com nt-mcp
#
# Environment (see README "Running over HTTPS" and the configuration table):
#   NT_JWT_SECRET | NT_JWT_PUBLIC_KEY_FILE | NT_JWT_JWKS_URL   token verification (one is required)
#   NT_JWT_ISSUER, NT_JWT_AUDIENCE, NT_PUBLIC_URL               who mints tokens, for which URL
#   NT_TLS_CERT_FILE, NT_TLS_KEY_FILE                            TLS (mount the pair read-only), or terminate TLS in front
#   NT_DATABASE_URL, NT_REDIS_URL                                PostgreSQL and Redis (needed for replicas)
#   NT_ALLOWED_HOSTS, NT_ALLOWED_ORIGINS                         Host/Origin allow-lists
#   NT_METRICS_ALLOW_CIDRS, NT_SHUTDOWN_GRACE_S, NT_HTTP_RATE_LIMIT, NT_AUTH_FAILURE_LIMIT
# The install steps live in scripts/docker-install.sh, which CI also runs in a fresh venv.

FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY sql ./sql
COPY scripts/docker-install.sh ./scripts/
RUN ./scripts/docker-install.sh build /dist

FROM python:3.11-slim
COPY --from=builder /dist /dist
COPY scripts/docker-install.sh /usr/local/bin/docker-install.sh
RUN /usr/local/bin/docker-install.sh install /dist /opt/nt-mcp \
    && rm -rf /dist \
    && useradd --system --uid 10001 --home-dir /var/lib/nt-mcp --create-home nt-mcp
ENV PATH="/opt/nt-mcp/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    NT_TRANSPORT=http \
    NT_HOST=0.0.0.0 \
    NT_PORT=8000 \
    NT_DATA_HOME=/var/lib/nt-mcp
USER nt-mcp
WORKDIR /var/lib/nt-mcp
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os,ssl,urllib.request as u; s='https' if os.environ.get('NT_TLS_CERT_FILE') else 'http'; c=ssl._create_unverified_context() if s=='https' else None; u.urlopen(f'{s}://127.0.0.1:{os.environ.get(\"NT_PORT\",\"8000\")}/health/live', timeout=2, context=c)"]
STOPSIGNAL SIGTERM
CMD ["nt-mcp", "serve", "--transport", "http"]
