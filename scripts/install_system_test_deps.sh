#!/usr/bin/env bash
# System packages the browser tests need (headless Chromium). Installed when missing and this user can
# run apt-get; otherwise those tests skip and say why.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && exit 0
  echo "warning: apt-get install chromium failed; the browser tests will be skipped" >&2
else
  echo "note: chromium is not installed (as root: apt-get install chromium); the browser tests will be skipped" >&2
fi
