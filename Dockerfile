# fondplan server image: the Python package (editable, so styles/ and node_modules/ are found
# beside it), the npm packages the viewer serves, the fonts the glyphs are built from.
FROM debian:bookworm-slim

# pycairo has no wheel here: it is built against libcairo2-dev with pkg-config and gcc, which
# are removed again once the Python packages are installed.
ARG BUILD_PACKAGES="libcairo2-dev pkg-config gcc python3-dev"
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv python3-pip nodejs npm ca-certificates osmium-tool \
        fonts-noto-core fonts-dejavu-core \
        libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri libopengl0 libcurl4 libuv1 libicu72 \
        libgl1 libglx-mesa0 \
        libjpeg62-turbo libpng16-16 libwebp7 libcairo2 \
        $BUILD_PACKAGES \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/fondplan
COPY pyproject.toml README.md package.json package-lock.json ./
COPY import ./import
COPY tileserver ./tileserver
COPY routing ./routing
COPY cities ./cities
COPY styles ./styles
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -e . \
    && npm ci --omit=dev --no-audit --no-fund \
    && DEBIAN_FRONTEND=noninteractive apt-get purge -y --auto-remove $BUILD_PACKAGES

# The server runs as an unprivileged user owning only its data folder.
RUN useradd --system --home-dir /var/lib/fondplan --create-home --shell /usr/sbin/nologin fondplan
USER fondplan

# The routing kernels' compiled code is cached where the server may write (the package is not).
ENV PATH=/opt/venv/bin:$PATH \
    FONDPLAN_DATA_DIR=/var/lib/fondplan \
    NUMBA_CACHE_DIR=/var/lib/fondplan/numba
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
CMD ["fondplan", "serve", "--host", "0.0.0.0", "--port", "8080"]
