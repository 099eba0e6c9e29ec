# fondplan server image: the Python package (editable, so styles/ and node_modules/ are found
# beside it), the npm packages the viewer serves, the fonts the glyphs are built from.
FROM debian:bookworm-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv python3-pip nodejs npm osmium-tool \
        fonts-noto-core fonts-dejavu-core \
        libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri libopengl0 libcurl4 libuv1 libicu72 \
        libjpeg62-turbo libpng16-16 libwebp7 libcairo2 \
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
    && npm ci --omit=dev --no-audit --no-fund

ENV PATH=/opt/venv/bin:$PATH \
    FONDPLAN_DATA_DIR=/var/lib/fondplan
EXPOSE 8080
CMD ["fondplan", "serve", "--host", "0.0.0.0", "--port", "8080"]
