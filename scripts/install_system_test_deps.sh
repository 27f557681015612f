#!/usr/bin/env bash
# System packages some tests need: headless Chromium (the browser tests) and a C++ compiler (torch.compile
# on the CPU). Installed when missing and this user can run apt-get; otherwise those tests skip and say why.
set -u
missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null && exit 0
  echo "warning: apt-get install ${missing[*]} failed; the tests that need them will be skipped" >&2
else
  echo "note: ${missing[*]} not installed (as root: apt-get install ${missing[*]}); the tests that need them will be skipped" >&2
fi
