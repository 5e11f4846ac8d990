#!/usr/bin/env bash
# Debian packages the project needs outside Python: Chromium (kaleido figure
# export) and tmux (terminal checks). Installed only when missing; a machine
# without apt or root just gets a warning (HTML figures still work).
set -uo pipefail
need=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v pdflatex >/dev/null 2>&1 || need+=(texlive-latex-base texlive-latex-recommended)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: warning: missing ${need[*]} (need root + apt-get); figures fall back to HTML" >&2
    exit 0
fi
echo "setup: apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || echo "setup: warning: could not install ${need[*]}" >&2
exit 0
