# logwarden: small, non-root, pinned base; dependencies installed at the versions of requirements.lock.
FROM python:3.11.7-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY logwarden ./logwarden
COPY flows ./flows
RUN pip wheel --no-cache-dir --wheel-dir /wheels --constraint requirements.lock ".[kafka]"

FROM python:3.11.7-slim-bookworm
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/logwarden logwarden \
    && mkdir -p /samples && chown logwarden /samples
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
# The shipped rule pack and anomaly model, where `logwarden` looks for them outside a checkout.
COPY rules/default.yaml /usr/share/logwarden/rules/default.yaml
COPY models/default.skops models/default.card.json models/default.baselines.json models/default.forest.npz /usr/share/logwarden/models/
USER logwarden
WORKDIR /var/lib/logwarden
ENV PYTHONUNBUFFERED=1
# The same command the README and tests run outside a container (a flow with metrics on
# overrides it with `logwarden status`, as docker-compose.yml does).
HEALTHCHECK --interval=30s --timeout=5s CMD ["logwarden", "--help"]
ENTRYPOINT ["logwarden"]
CMD ["demo"]
