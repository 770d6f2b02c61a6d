# One image for the four services; compose.yaml picks the service with the command.
FROM python:3.11-slim
RUN pip install --no-cache-dir uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/app/.venv PATH=/app/.venv/bin:$PATH
COPY pyproject.toml uv.lock ./
COPY shared shared
COPY infra infra
COPY services services
RUN uv sync --frozen --no-dev
USER nobody
EXPOSE 8001 8002 8003 8004
CMD ["lastline-intake"]
