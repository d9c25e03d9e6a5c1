#!/usr/bin/env bash
# Debian packages outside PyPI that reid-pipeline uses:
#   ffmpeg                 the annotated video sink (fragmented MP4 that survives kill -9)
#   GStreamer RTSP server  the real RTSP server the source/fault tests and tools/fault_campaign.py run on 127.0.0.1
# Installs only what is missing, as root with apt-get; otherwise prints the apt-get line to run.
set -euo pipefail
PKGS=(ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
      gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
      mosquitto openssl)  # the MQTT broker test_mqtt.py / bench_mqtt.py start on 127.0.0.1 (own config, never
      # the service); openssl: the throw-away certificates of its TLS test
PKGS+=(chromium)  # the web console's browser tests (tests/web, Playwright with executable_path=/usr/bin/chromium)
command -v dpkg >/dev/null || { echo "[setup] not a Debian system: install ffmpeg and the GStreamer RTSP server yourself"; exit 0; }
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "[setup] missing Debian packages (tests that need them fail): sudo apt-get install ${missing[*]}"
fi
