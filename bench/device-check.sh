#!/usr/bin/env bash
# Which onnxruntime backends and GPUs this machine has, whether a WebGPU session opens, and a ResNet-18 and a
# MobileNetV2 training step timed on WebGPU against the CPU. Runs unchanged on a GPU machine (needs the repo's
# node_modules: run `npm install` first where the network allows it).
# Usage: bash bench/device-check.sh [--iters 5]
set -u
cd "$(dirname "$0")/.."
echo "== machine: $(uname -sm), $(nproc) cores, node $(node --version), onnxruntime-node $(node -p "require('onnxruntime-node/package.json').version")"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; else echo "== nvidia-smi: not found"; fi
if command -v vulkaninfo >/dev/null; then vulkaninfo --summary 2>/dev/null | grep -E 'deviceName|driverName|apiVersion' | head -6; else echo "== vulkaninfo: not found (Debian: vulkan-tools)"; fi
echo "== graft --device webgpu on a one-node model:"
node --import tsx -e "
import { createSession } from './src/runtime/session.ts';
import { buildModelForDeviceCheck } from './bench/device-model.ts';
try { await createSession(buildModelForDeviceCheck(), { device: 'webgpu' }); console.log('webgpu session: opened'); }
catch (e) { console.log('webgpu session: ' + e.message); }
" 2>&1 | grep -v -E '^(error: XDG_RUNTIME_DIR|Warning: Vulkan| - While|    at )'
echo "== training steps:"
node --import tsx bench/device-check.ts "$@" 2>&1 | grep -v -E '^(error: XDG_RUNTIME_DIR|Warning: Vulkan| - While|    at )'
