# logwarden: small, non-root, pinned base; dependencies pinned in pyproject.toml.
FROM python:3.11.7-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY logwarden ./logwarden
COPY flows ./flows
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.7-slim-bookworm
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/logwarden logwarden
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The shipped rule pack and anomaly model, where `logwarden` looks for them outside a checkout.
COPY rules/default.yaml /usr/share/logwarden/rules/default.yaml
COPY models/default.skops models/default.card.json models/default.baselines.json /usr/share/logwarden/models/
USER logwarden
WORKDIR /var/lib/logwarden
ENV PYTHONUNBUFFERED=1
# The same command the README and tests run outside a container.
HEALTHCHECK --interval=30s --timeout=5s CMD ["logwarden", "--help"]
ENTRYPOINT ["logwarden"]
CMD ["demo"]
