// Fixed layout, signatures and well-known GUIDs of MS-VHDX v1.0.

export const KiB = 1024;
export const MiB = 1024 * 1024;

export const FILE_IDENTIFIER_OFFSET = 0;
export const HEADER_OFFSETS = [64 * KiB, 128 * KiB] as const;
export const REGION_TABLE_OFFSETS = [192 * KiB, 256 * KiB] as const;
export const HEADER_SIZE = 4 * KiB;
export const REGION_TABLE_SIZE = 64 * KiB;
export const METADATA_TABLE_SIZE = 64 * KiB;
export const LOG_SECTOR_SIZE = 4 * KiB;
export const SECTOR_BITMAP_BLOCK_SIZE = MiB;
/** Every sector-bitmap block covers 2^23 logical sectors (one bit each in 1 MiB). */
export const SECTORS_PER_CHUNK = 2 ** 23;

export const REGION_BAT = '2dc27766-f623-4200-9d64-115e9bfd4a08';
export const REGION_METADATA = '8b7ca206-4790-4b9a-b8fe-575f050f886e';

export const META_FILE_PARAMETERS = 'caa16737-fa36-4d43-b3b6-33f0aa44e76b';
export const META_VIRTUAL_DISK_SIZE = '2fa54224-cd1b-4876-b211-5dbed83bf4b8';
export const META_PAGE83 = 'beca12ab-b2e6-4523-93ef-c309e000c746';
export const META_LOGICAL_SECTOR_SIZE = '8141bf1d-a96f-4709-ba47-f233a8faab5f';
export const META_PHYSICAL_SECTOR_SIZE = 'cda348c7-445d-4471-9cc9-e9885251c556';
export const META_PARENT_LOCATOR = 'a8d35f2d-b30b-454d-abf7-d3d84834ab0c';
export const PARENT_LOCATOR_TYPE_VHDX = 'b04aefb7-d19e-4a81-b789-25b8e9445913';

export const KNOWN_METADATA = new Set([
  META_FILE_PARAMETERS, META_VIRTUAL_DISK_SIZE, META_PAGE83,
  META_LOGICAL_SECTOR_SIZE, META_PHYSICAL_SECTOR_SIZE, META_PARENT_LOCATOR,
]);

/** Payload block states (bits 0-2 of a BAT entry). */
export const PAYLOAD_BLOCK_NOT_PRESENT = 0;
export const PAYLOAD_BLOCK_UNDEFINED = 1;
export const PAYLOAD_BLOCK_ZERO = 2;
/** 3 per MS-VHDX and Windows; qemu's vhdx.h says 5 — both are accepted on read. */
export const PAYLOAD_BLOCK_UNMAPPED = 3;
export const PAYLOAD_BLOCK_UNMAPPED_QEMU = 5;
export const PAYLOAD_BLOCK_FULLY_PRESENT = 6;
export const PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7;
export const SB_BLOCK_NOT_PRESENT = 0;
export const SB_BLOCK_PRESENT = 6;
