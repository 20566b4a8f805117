# One image for every service of the mesh: `mesh run <service>` is the command (compose.yml
# names it per service). Made by `mesh deploy compose`, which first builds the wheels on the
# host — the dependencies in build/wheels, the mesh itself in build/project — so nothing is
# downloaded while the image builds:
#
#   docker build --build-arg BASE_IMAGE=python:3.11-slim-bookworm -t agent-mesh:0.1.0 .
#
# BASE_IMAGE: any Debian-like image with Python 3.11+ and its `venv` module.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# Our images carry this label: `mesh deploy compose` prunes its own untagged leftovers by it.
LABEL io.agent-mesh.image=build
# A venv from the wheels only (--no-index). The dependencies first, in a layer of their own that
# a change to the mesh's code leaves cached; then the mesh, and no pip: the image installs nothing.
COPY build/wheels/ /wheels/
RUN python3 -m venv /opt/mesh \
    && /opt/mesh/bin/pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl
COPY build/project/ /project/
RUN /opt/mesh/bin/pip install --no-cache-dir --no-index --no-deps /project/*.whl \
    && /opt/mesh/bin/pip check \
    && /opt/mesh/bin/pip uninstall --yes --quiet pip \
    && /opt/mesh/bin/mesh --help >/dev/null

FROM ${BASE_IMAGE}
LABEL io.agent-mesh.image=mesh
RUN groupadd --system --gid 10001 mesh \
    && useradd --system --uid 10001 --gid mesh --create-home --home-dir /home/mesh mesh
COPY --from=build /opt/mesh /opt/mesh
COPY deploy/entrypoint.sh /usr/local/bin/mesh-entrypoint
COPY deploy/healthcheck.py /usr/local/bin/mesh-healthcheck
ENV PATH=/opt/mesh/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MESH_HOME=/home/mesh/.mesh \
    MESH_HTTP_HOST=0.0.0.0 \
    MESH_HTTP_PORT=8080 \
    MESH_LOG_FORMAT=json
USER mesh
WORKDIR /home/mesh
EXPOSE 8080
# SIGTERM drains: no new messages, in-flight ones finished and acked (at most a third of
# MESH_ACK_WAIT_SECONDS, 10 s), held HTTP requests answered (10 s), then exit 0. Give it 30 s
# (compose.yml's stop_grace_period) before Docker's SIGKILL.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["mesh-healthcheck", "/healthz"]
ENTRYPOINT ["mesh-entrypoint"]
CMD ["mesh", "run", "--help"]
