/**
 * Where graft's onnxruntime sessions run: `cpu` (the default) or `webgpu` (onnxruntime-node's bundled WebGPU
 * execution provider). This is the one place the device is chosen, like ./threads.ts for the thread count: the
 * process default set by {@link setDefaultDevice} (the CLI's --device, the config's run.device), then env
 * GRAFT_DEVICE, then `cpu`. A device that cannot be used is an error, never a silent fall back to the CPU.
 */
import * as ort from 'onnxruntime-node';

/** The devices graft can run sessions on. */
export const DEVICES = ['cpu', 'webgpu'] as const;
export type Device = (typeof DEVICES)[number];

let processDefault: Device | undefined;

/** Throws a clear error unless `name` is one of {@link DEVICES}; `where` names the flag or key that gave it. */
export function parseDevice(name: string, where = '--device'): Device {
  if ((DEVICES as readonly string[]).includes(name)) return name as Device;
  throw new Error(`${where} ${JSON.stringify(name)} is not a device graft knows; use one of: ${DEVICES.join(', ')} (e.g. ${where} cpu).`);
}

/** Sets (or, with undefined, clears) the device of sessions whose options name none. */
export function setDefaultDevice(device: Device | undefined): void {
  processDefault = device === undefined ? undefined : parseDevice(device);
}

/** The device of a session whose options name none: the process default, else env GRAFT_DEVICE, else `cpu`. */
export function defaultDevice(): Device {
  if (processDefault) return processDefault;
  const env = process.env.GRAFT_DEVICE;
  return env ? parseDevice(env, 'GRAFT_DEVICE') : 'cpu';
}

/** The onnxruntime backends this build of onnxruntime-node has, as it reports them (name, bundled). */
export function listBackends(): { name: string; bundled: boolean }[] {
  const list = (ort as unknown as { listSupportedBackends?: () => { name: string; bundled: boolean }[] }).listSupportedBackends;
  return list ? list() : [{ name: 'cpu', bundled: true }];
}

/** onnxruntime's execution-provider list for a device: exactly that provider, so nothing falls back silently. */
export function executionProviders(device: Device): string[] {
  if (device === 'cpu') return ['cpu'];
  if (!listBackends().some((b) => b.name === device && b.bundled))
    throw new Error(
      `--device ${device}: this onnxruntime-node build has no bundled ${device} provider (it has: ${listBackends()
        .filter((b) => b.bundled)
        .map((b) => b.name)
        .join(', ')}). Use --device cpu, or install an onnxruntime-node build for linux x64 or win32, which bundle WebGPU.`,
    );
  return [device];
}

/**
 * The error for a session that onnxruntime could not create on `device`, or undefined when the failure is not
 * about the device (the caller then reports it as it would on the CPU).
 */
export function deviceError(device: Device, message: string): Error | undefined {
  if (device === 'cpu') return undefined;
  if (!/adapter|webgpu|dawn|vulkan|device/i.test(message)) return undefined;
  const why = /No supported adapters|Failed to get a WebGPU adapter/i.test(message)
    ? 'onnxruntime found no WebGPU adapter on this machine (no GPU, or no Vulkan/Metal/D3D12 driver for it)'
    : `onnxruntime could not start its ${device} provider: ${message.split('\n')[0]}`;
  return new Error(
    `--device ${device}: ${why}. graft does not fall back to the CPU on its own: run with --device cpu (the default), or on a machine whose GPU has a WebGPU-capable driver (check with bench/device-check.sh).`,
  );
}
