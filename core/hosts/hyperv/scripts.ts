// Every PowerShell script the Hyper-V driver runs, as fixed text. Nothing here is ever
// concatenated with user data: VM names, ids and paths reach a script only as `$p`, the
// decoded JSON parameter object (see session.ts). Each script starts with a
// "# hvbackup:<name>" line so errors can say which step failed.
//
// Lookups compare with -eq inside Where-Object instead of -Name/-Filter, because
// Get-VM -Name treats the name as a wildcard and WQL filters would need escaping.

const NS = `$ns = 'root\\virtualization\\v2'`;

/** Sets `$s` to the checkpoint (Msvm_VirtualSystemSettingData) `$p.snapshotInstanceId` names, or throws. */
const FIND_SNAPSHOT = `$s = Get-CimInstance -Namespace $ns -ClassName Msvm_VirtualSystemSettingData | Where-Object { $_.InstanceID -eq [string]$p.snapshotInstanceId }
if (-not $s) { throw ('checkpoint {0} not found' -f $p.snapshotInstanceId) }`;

/** Runs a script block (base64 UTF-8) with its parameters (base64 UTF-8 JSON); answers one line. */
export const ENVELOPE = `param([string]$scriptB64, [string]$paramsB64)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
  $p = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($paramsB64)) | ConvertFrom-Json
  $sb = [ScriptBlock]::Create([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($scriptB64)))
  $value = & $sb $p
  $out = ConvertTo-Json -InputObject @{ ok = $true; value = $value } -Depth 6 -Compress
} catch {
  $out = ConvertTo-Json -InputObject @{ ok = $false; message = [string]$_.Exception.Message; category = [string]$_.CategoryInfo.Category; errorId = [string]$_.FullyQualifiedErrorId } -Compress
}
[Console]::Out.WriteLine('HVB:' + [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($out)))`;

/** Host OS version, supported VM configuration versions, failover clustering. */
export const HOST_INFO = `# hvbackup:host-info
param($p)
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$supported = @()
$default = $null
if (Get-Command Get-VMHostSupportedVersion -ErrorAction SilentlyContinue) {
  $supported = @(Get-VMHostSupportedVersion | ForEach-Object { [string]$_.Version })
  $default = [string](Get-VMHostSupportedVersion -Default).Version
}
[pscustomobject]@{
  ComputerName = $env:COMPUTERNAME
  OsVersion = [string]$os.Version
  OsCaption = [string]$os.Caption
  SupportedVersions = $supported
  DefaultVersion = $default
  FailoverClusters = [bool](Get-Module -ListAvailable -Name FailoverClusters)
}`;

export const LIST_VMS = `# hvbackup:list-vms
param($p)
@(Get-VM | ForEach-Object {
  [pscustomobject]@{ VMId = [string]$_.VMId; Name = $_.Name; State = $_.State; ConfigurationLocation = $_.ConfigurationLocation }
})`;

/** One VM by id or exact name, with its disks, configuration files and cluster group. */
export const DESCRIBE_VM = `# hvbackup:describe-vm
param($p)
$ref = [string]$p.ref
$vms = @(Get-VM | Where-Object { ([string]$_.VMId -eq $ref) -or ($_.Name -eq $ref) })
if ($vms.Count -eq 0) { return $null }
if ($vms.Count -gt 1) { throw ('{0} virtual machines are named "{1}": use the VM id' -f $vms.Count, $ref) }
$vm = $vms[0]
$drives = @(Get-VMHardDiskDrive -VM $vm | ForEach-Object {
  [pscustomobject]@{ ControllerType = $_.ControllerType; ControllerNumber = $_.ControllerNumber; ControllerLocation = $_.ControllerLocation; Path = $_.Path; DiskNumber = $_.DiskNumber }
})
$cfgDir = Join-Path $vm.ConfigurationLocation 'Virtual Machines'
$files = @(Get-ChildItem -LiteralPath $cfgDir -File -ErrorAction SilentlyContinue |
  Where-Object { $_.BaseName -eq [string]$vm.VMId } | ForEach-Object { $_.FullName })
$cluster = $null
if ($vm.IsClustered -and (Get-Module -ListAvailable -Name FailoverClusters)) {
  $g = Get-ClusterGroup -VMId $vm.VMId -ErrorAction SilentlyContinue
  if ($g) { $cluster = [pscustomobject]@{ Name = $g.Name; OwnerNode = [string]$g.OwnerNode; Cluster = [string]$g.Cluster } }
}
[pscustomobject]@{
  VMId = [string]$vm.VMId; Name = $vm.Name; State = $vm.State; Generation = $vm.Generation
  Version = [string]$vm.Version; CheckpointType = $vm.CheckpointType; IsClustered = [bool]$vm.IsClustered
  ConfigurationLocation = $vm.ConfigurationLocation; Path = $vm.Path
  HardDrives = $drives; ConfigurationFiles = $files; ClusterGroup = $cluster
}`;

/** Every checkpoint of the VM (standard, production, recovery, replica). */
export const LIST_CHECKPOINTS = `# hvbackup:list-checkpoints
param($p)
$vm = Get-VM | Where-Object { [string]$_.VMId -eq [string]$p.vmId }
if (-not $vm) { throw ('virtual machine {0} not found' -f $p.vmId) }
@(Get-VMSnapshot -VM $vm | ForEach-Object {
  [pscustomobject]@{
    Id = [string]$_.Id; Name = $_.Name; SnapshotType = $_.SnapshotType; Notes = $_.Notes
    CreationTime = $_.CreationTime.ToUniversalTime().ToString('o'); ParentSnapshotId = [string]$_.ParentSnapshotId
  }
})`;

/** Merge one checkpoint (ours) back into the VM's disks. */
export const REMOVE_CHECKPOINT = `# hvbackup:remove-checkpoint
param($p)
$vm = Get-VM | Where-Object { [string]$_.VMId -eq [string]$p.vmId }
if (-not $vm) { throw ('virtual machine {0} not found' -f $p.vmId) }
$s = @(Get-VMSnapshot -VM $vm | Where-Object { [string]$_.Id -eq [string]$p.checkpointId })
if ($s.Count -eq 0) { return [pscustomobject]@{ Removed = 0 } }
$s | Remove-VMSnapshot -Confirm:$false
[pscustomobject]@{ Removed = $s.Count }`;

/**
 * Msvm_VirtualSystemSnapshotService.CreateSnapshot: SnapshotType 32768 = recovery checkpoint,
 * SnapshotSettings = embedded Msvm_VirtualSystemSnapshotSettingData (ConsistencyLevel 1 app / 2 crash).
 */
export const CREATE_RECOVERY_SNAPSHOT = `# hvbackup:create-recovery-snapshot
param($p)
${NS}
$vm = Get-CimInstance -Namespace $ns -ClassName Msvm_ComputerSystem | Where-Object { $_.Name -eq [string]$p.vmId }
if (-not $vm) { throw ('virtual machine {0} not found' -f $p.vmId) }
$svc = Get-CimInstance -Namespace $ns -ClassName Msvm_VirtualSystemSnapshotService
$cls = Get-CimClass -Namespace $ns -ClassName Msvm_VirtualSystemSnapshotSettingData
$sd = New-CimInstance -CimClass $cls -ClientOnly -Property @{ ElementName = [string]$p.name; ConsistencyLevel = [byte]$p.consistencyLevel; IgnoreNonSnapshottableDisks = $true; GuestBackupType = [byte]1 }
$ser = [Microsoft.Management.Infrastructure.Serialization.CimSerializer]::Create()
$text = [Text.Encoding]::Unicode.GetString($ser.Serialize($sd, [Microsoft.Management.Infrastructure.Serialization.InstanceSerializationOptions]::None))
$r = Invoke-CimMethod -InputObject $svc -MethodName CreateSnapshot -Arguments @{ AffectedSystem = $vm; SnapshotSettings = $text; SnapshotType = [uint16]$p.snapshotType }
[pscustomobject]@{ ReturnValue = [int]$r.ReturnValue; JobId = [string]$r.Job.InstanceID; SnapshotInstanceId = [string]$r.ResultingSnapshot.InstanceID }`;

/** One Msvm_ConcreteJob by InstanceID (JobState 7 = completed). */
export const GET_JOB = `# hvbackup:get-job
param($p)
${NS}
$j = Get-CimInstance -Namespace $ns -ClassName Msvm_ConcreteJob | Where-Object { $_.InstanceID -eq [string]$p.jobId }
if (-not $j) { return $null }
[pscustomobject]@{
  InstanceID = $j.InstanceID; JobState = [int]$j.JobState; PercentComplete = $j.PercentComplete; ErrorCode = $j.ErrorCode
  ErrorDescription = $j.ErrorDescription; ErrorSummaryDescription = $j.ErrorSummaryDescription; JobStatus = $j.JobStatus; Name = $j.Name
}`;

/**
 * The recovery snapshot a completed CreateSnapshot job produced (Msvm_AffectedJobElement), or
 * the VM's newest recovery snapshot when the job is already gone.
 */
export const GET_JOB_SNAPSHOT = `# hvbackup:get-job-snapshot
param($p)
${NS}
$s = $null
$j = Get-CimInstance -Namespace $ns -ClassName Msvm_ConcreteJob | Where-Object { $_.InstanceID -eq [string]$p.jobId }
if ($j) { $s = Get-CimAssociatedInstance -InputObject $j -ResultClassName Msvm_VirtualSystemSettingData | Select-Object -First 1 }
if (-not $s) {
  $s = Get-CimInstance -Namespace $ns -ClassName Msvm_VirtualSystemSettingData |
    Where-Object { $_.VirtualSystemIdentifier -eq [string]$p.vmId -and $_.VirtualSystemType -eq 'Microsoft:Hyper-V:Snapshot:Recovery' } |
    Sort-Object CreationTime -Descending | Select-Object -First 1
}
if (-not $s) { return $null }
[pscustomobject]@{ InstanceID = $s.InstanceID; ConfigurationID = [string]$s.ConfigurationID; ElementName = $s.ElementName; VirtualSystemType = $s.VirtualSystemType }`;

/** Name our checkpoint (Msvm_VirtualSystemManagementService.ModifySystemSettings) so later runs know it is ours. */
export const TAG_SNAPSHOT = `# hvbackup:tag-snapshot
param($p)
${NS}
${FIND_SNAPSHOT}
$s.ElementName = [string]$p.name
$s.Notes = @([string]$p.notes)
$svc = Get-CimInstance -Namespace $ns -ClassName Msvm_VirtualSystemManagementService
$ser = [Microsoft.Management.Infrastructure.Serialization.CimSerializer]::Create()
$text = [Text.Encoding]::Unicode.GetString($ser.Serialize($s, [Microsoft.Management.Infrastructure.Serialization.InstanceSerializationOptions]::None))
$r = Invoke-CimMethod -InputObject $svc -MethodName ModifySystemSettings -Arguments @{ SystemSettings = $text }
[pscustomobject]@{ ReturnValue = [int]$r.ReturnValue; JobId = [string]$r.Job.InstanceID }`;

/**
 * The checkpoint's frozen disks: Msvm_StorageAllocationSettingData.HostResource in the
 * snapshot's order (the order of the reference point's RCT ids), with controller addresses
 * from Get-VMHardDiskDrive -VMSnapshot and virtual sizes from Get-VHD.
 */
export const GET_SNAPSHOT_DISKS = `# hvbackup:get-snapshot-disks
param($p)
${NS}
${FIND_SNAPSHOT}
$sasd = @(Get-CimAssociatedInstance -InputObject $s -ResultClassName Msvm_StorageAllocationSettingData |
  Where-Object { $_.ResourceSubType -eq 'Microsoft:Hyper-V:Virtual Hard Disk' })
$vm = Get-VM | Where-Object { [string]$_.VMId -eq [string]$p.vmId }
$snap = Get-VMSnapshot -VM $vm | Where-Object { [string]$_.Id -eq [string]$p.checkpointId }
$drives = @()
if ($snap) { $drives = @(Get-VMHardDiskDrive -VMSnapshot $snap) }
$current = @(Get-VMHardDiskDrive -VM $vm)
@($sasd | ForEach-Object {
  $path = [string]$_.HostResource[0]
  $d = $drives | Where-Object { $_.Path -eq $path } | Select-Object -First 1
  # Not listed under the checkpoint: the VM's drive now writing to a child of this file.
  if (-not $d) { $d = $current | Where-Object { (Get-VHD -Path $_.Path -ErrorAction SilentlyContinue).ParentPath -eq $path } | Select-Object -First 1 }
  $vhd = Get-VHD -Path $path -ErrorAction SilentlyContinue
  [pscustomobject]@{
    HostResource = @($_.HostResource); ControllerType = $d.ControllerType; ControllerNumber = $d.ControllerNumber
    ControllerLocation = $d.ControllerLocation; Size = $vhd.Size; VhdFormat = [string]$vhd.VhdFormat
  }
})`;

/**
 * The checkpoint's configuration as an importable VM (Msvm_VirtualSystemManagementService.
 * ExportSystemDefinition with CopySnapshotConfiguration 3 = ExportOneSnapshotUseVmId, no
 * storage, no runtime state, disks pointing at the base VHDX), into a fresh folder under the
 * host's temp folder: the live .vmcx/.vmrs of a running VM change under us and may be locked.
 */
export const EXPORT_SNAPSHOT_CONFIG = `# hvbackup:export-snapshot-config
param($p)
${NS}
$vm = Get-CimInstance -Namespace $ns -ClassName Msvm_ComputerSystem | Where-Object { $_.Name -eq [string]$p.vmId }
if (-not $vm) { throw ('virtual machine {0} not found' -f $p.vmId) }
${FIND_SNAPSHOT}
$dir = Join-Path ([IO.Path]::GetTempPath()) ([string]$p.folderName)
New-Item -ItemType Directory -Path $dir -Force | Out-Null
$es = Get-CimAssociatedInstance -InputObject $vm -ResultClassName Msvm_VirtualSystemExportSettingData | Select-Object -First 1
$es.CopySnapshotConfiguration = [byte]3
$es.CopyVmRuntimeInformation = $false
$es.CopyVmStorage = $false
$es.CreateVmExportSubdirectory = $false
$es.StorageConfiguration = [byte]1
$es.SnapshotVirtualSystem = ('\\\\{0}\\root\\virtualization\\v2:Msvm_VirtualSystemSettingData.InstanceID="{1}"' -f $env:COMPUTERNAME, $s.InstanceID)
$ser = [Microsoft.Management.Infrastructure.Serialization.CimSerializer]::Create()
$text = [Text.Encoding]::Unicode.GetString($ser.Serialize($es, [Microsoft.Management.Infrastructure.Serialization.InstanceSerializationOptions]::None))
$svc = Get-CimInstance -Namespace $ns -ClassName Msvm_VirtualSystemManagementService
$r = Invoke-CimMethod -InputObject $svc -MethodName ExportSystemDefinition -Arguments @{ ComputerSystem = $vm; ExportDirectory = $dir; ExportSettingData = $text }
[pscustomobject]@{ ReturnValue = [int]$r.ReturnValue; JobId = [string]$r.Job.InstanceID; Directory = $dir }`;

export const LIST_EXPORT = `# hvbackup:list-export
param($p)
@(Get-ChildItem -LiteralPath ([string]$p.directory) -Recurse -File | ForEach-Object { $_.FullName })`;

/** Delete a configuration export folder; only folders named by EXPORT_SNAPSHOT_CONFIG are passed. */
export const REMOVE_EXPORT = `# hvbackup:remove-export
param($p)
if (Test-Path -LiteralPath ([string]$p.directory)) { Remove-Item -LiteralPath ([string]$p.directory) -Recurse -Force }
$null`;

/** Msvm_ImageManagementService.GetVirtualDiskChanges for one window of the disk. */
export const GET_VIRTUAL_DISK_CHANGES = `# hvbackup:get-virtual-disk-changes
param($p)
${NS}
$svc = Get-CimInstance -Namespace $ns -ClassName Msvm_ImageManagementService
$r = Invoke-CimMethod -InputObject $svc -MethodName GetVirtualDiskChanges -Arguments @{
  Path = [string]$p.path; LimitId = [string]$p.limitId; TargetSnapshotId = ''
  ByteOffset = [uint64]$p.byteOffset; ByteLength = [uint64]$p.byteLength
}
[pscustomobject]@{
  ReturnValue = [int]$r.ReturnValue; JobId = [string]$r.Job.InstanceID; ProcessedByteLength = $r.ProcessedByteLength
  ChangedByteOffsets = @($r.ChangedByteOffsets); ChangedByteLengths = @($r.ChangedByteLengths)
}`;

/**
 * Msvm_VirtualSystemSnapshotService.ConvertToReferencePoint: merges the recovery checkpoint
 * and leaves a Msvm_VirtualSystemReferencePoint holding the disks' RCT ids (as in Microsoft's
 * xHyper-VBackup sample).
 */
export const CONVERT_TO_REFERENCE_POINT = `# hvbackup:convert-to-reference-point
param($p)
${NS}
${FIND_SNAPSHOT}
$svc = Get-CimInstance -Namespace $ns -ClassName Msvm_VirtualSystemSnapshotService
$r = Invoke-CimMethod -InputObject $svc -MethodName ConvertToReferencePoint -Arguments @{ AffectedSnapshot = $s }
[pscustomobject]@{ ReturnValue = [int]$r.ReturnValue; JobId = [string]$r.Job.InstanceID; ReferencePointInstanceId = [string]$r.ResultingReferencePoint.InstanceID }`;

/**
 * Reference points: the one with InstanceID $p.instanceId, else the one the job $p.jobId made
 * (Msvm_AffectedJobElement), else all of the VM's (Msvm_ReferencePointOfVirtualSystem).
 */
export const GET_REFERENCE_POINTS = `# hvbackup:get-reference-points
param($p)
${NS}
$vm = Get-CimInstance -Namespace $ns -ClassName Msvm_ComputerSystem | Where-Object { $_.Name -eq [string]$p.vmId }
if (-not $vm) { throw ('virtual machine {0} not found' -f $p.vmId) }
$rps = @(Get-CimAssociatedInstance -InputObject $vm -ResultClassName Msvm_VirtualSystemReferencePoint)
if ($p.instanceId) {
  $rps = @($rps | Where-Object { $_.InstanceID -eq [string]$p.instanceId })
} elseif ($p.jobId) {
  $j = Get-CimInstance -Namespace $ns -ClassName Msvm_ConcreteJob | Where-Object { $_.InstanceID -eq [string]$p.jobId }
  if ($j) {
    $made = @(Get-CimAssociatedInstance -InputObject $j -ResultClassName Msvm_VirtualSystemReferencePoint)
    if ($made.Count -gt 0) { $rps = $made }
  }
}
@($rps | ForEach-Object {
  [pscustomobject]@{
    InstanceID = $_.InstanceID; ElementName = $_.ElementName; ReferencePointType = $_.ReferencePointType; ConsistencyLevel = $_.ConsistencyLevel
    VirtualDiskIdentifiers = @($_.VirtualDiskIdentifiers); ResilientChangeTrackingIdentifiers = @($_.ResilientChangeTrackingIdentifiers)
  }
})`;

export const DESTROY_REFERENCE_POINT = `# hvbackup:destroy-reference-point
param($p)
${NS}
$rp = Get-CimInstance -Namespace $ns -ClassName Msvm_VirtualSystemReferencePoint | Where-Object { $_.InstanceID -eq [string]$p.referencePointId }
if (-not $rp) { return [pscustomobject]@{ ReturnValue = 0; JobId = ''; Missing = $true } }
$svc = Get-CimInstance -Namespace $ns -ClassName Msvm_VirtualSystemReferencePointService
$r = Invoke-CimMethod -InputObject $svc -MethodName DestroyReferencePoint -Arguments @{ AffectedReferencePoint = $rp }
[pscustomobject]@{ ReturnValue = [int]$r.ReturnValue; JobId = [string]$r.Job.InstanceID; Missing = $false }`;

/** Msvm_VirtualSystemSnapshotService.DestroySnapshot: merge a recovery checkpoint without keeping a reference. */
export const DESTROY_SNAPSHOT = `# hvbackup:destroy-snapshot
param($p)
${NS}
${FIND_SNAPSHOT}
$svc = Get-CimInstance -Namespace $ns -ClassName Msvm_VirtualSystemSnapshotService
$r = Invoke-CimMethod -InputObject $svc -MethodName DestroySnapshot -Arguments @{ AffectedSnapshot = $s }
[pscustomobject]@{ ReturnValue = [int]$r.ReturnValue; JobId = [string]$r.Job.InstanceID }`;

/** Windows Server 2012 R2: a standard checkpoint through the Hyper-V module; disks are its parents. */
export const LEGACY_CHECKPOINT = `# hvbackup:legacy-checkpoint
param($p)
$vm = Get-VM | Where-Object { [string]$_.VMId -eq [string]$p.vmId }
if (-not $vm) { throw ('virtual machine {0} not found' -f $p.vmId) }
$s = Checkpoint-VM -VM $vm -SnapshotName ([string]$p.name) -Passthru
$drives = @(Get-VMHardDiskDrive -VMSnapshot $s | ForEach-Object {
  $vhd = Get-VHD -Path $_.Path -ErrorAction SilentlyContinue
  [pscustomobject]@{ ControllerType = $_.ControllerType; ControllerNumber = $_.ControllerNumber; ControllerLocation = $_.ControllerLocation; Path = $_.Path; Size = $vhd.Size; VhdFormat = [string]$vhd.VhdFormat }
})
[pscustomobject]@{ Id = [string]$s.Id; Name = $s.Name; CreationTime = $s.CreationTime.ToUniversalTime().ToString('o'); HardDrives = $drives }`;

/**
 * Import a restored VM: Compare-VM first so the disks can be pointed at the restored files (by
 * controller address) and incompatibilities are reported instead of half-imported; then
 * Import-VM -Copy (with -GenerateNewId beside the original), because the restored configuration
 * sits in a staging folder the restore engine deletes afterwards. -Copy copies each disk into
 * VhdDestinationPath; a restored disk already there is first moved into $p.stagingPath (inside
 * the destination) and moved back if the import does not happen, so nothing is lost.
 */
export const IMPORT_VM = `# hvbackup:import-vm
param($p)
$stage = [string]$p.stagingPath
$moved = @()
foreach ($d in @($p.disks)) {
  $leaf = Split-Path -Leaf ([string]$d.path)
  if ((Join-Path ([string]$p.vhdDestinationPath) $leaf) -eq [string]$d.path) {
    if (-not (Test-Path -LiteralPath $stage)) { New-Item -ItemType Directory -Path $stage | Out-Null }
    $to = Join-Path $stage $leaf
    Move-Item -LiteralPath ([string]$d.path) -Destination $to
    $moved += [pscustomobject]@{ From = $to; To = [string]$d.path }
    $d.path = $to
  }
}
$vm = $null
try {
  $ia = @{ Path = [string]$p.configPath; Copy = $true; GenerateNewId = [bool]$p.newId
    VirtualMachinePath = [string]$p.directory; SnapshotFilePath = [string]$p.directory
    SmartPagingFilePath = [string]$p.directory; VhdDestinationPath = [string]$p.vhdDestinationPath }
  $report = Compare-VM @ia
  $byKey = @{}
  foreach ($d in @($p.disks)) { $byKey[[string]$d.key] = [string]$d.path }
  # Every file-backed drive must point at a restored file: left alone, it would name the
  # original VM's (live) disk and Import-VM -Copy would copy that instead.
  $unmapped = @()
  foreach ($drive in @(Get-VMHardDiskDrive -VM $report.VM)) {
    $key = '{0}:{1}:{2}' -f $drive.ControllerType, $drive.ControllerNumber, $drive.ControllerLocation
    if ($byKey.ContainsKey($key)) { Set-VMHardDiskDrive -VMHardDiskDrive $drive -Path $byKey[$key] }
    elseif ($null -eq $drive.DiskNumber) { $unmapped += [pscustomobject]@{ MessageId = 0; Message = ('drive {0} ({1}) was not restored' -f $key, $drive.Path) } }
  }
  if ($unmapped.Count -gt 0) { return [pscustomobject]@{ Imported = $false; Incompatibilities = $unmapped } }
  $report = Compare-VM -CompatibilityReport $report
  $left = @($report.Incompatibilities | ForEach-Object { [pscustomobject]@{ MessageId = $_.MessageId; Message = $_.Message } })
  if ($left.Count -gt 0) { return [pscustomobject]@{ Imported = $false; Incompatibilities = $left } }
  $vm = Import-VM -CompatibilityReport $report
  if ($p.name -and $vm.Name -ne [string]$p.name) { Rename-VM -VM $vm -NewName ([string]$p.name); $vm = Get-VM -Id $vm.VMId }
} finally {
  if ($moved.Count -gt 0) {
    if ($vm) { Remove-Item -LiteralPath $stage -Recurse -Force }
    else { foreach ($m in $moved) { Move-Item -LiteralPath $m.From -Destination $m.To } ; Remove-Item -LiteralPath $stage -Force }
  }
}
[pscustomobject]@{ Imported = $true; VMId = [string]$vm.VMId; Name = $vm.Name; State = $vm.State; ConfigurationLocation = $vm.ConfigurationLocation }`;

/** Every script, for tests that check no script text carries data. */
export const ALL_SCRIPTS: readonly string[] = [
  ENVELOPE, HOST_INFO, LIST_VMS, DESCRIBE_VM, LIST_CHECKPOINTS, REMOVE_CHECKPOINT, CREATE_RECOVERY_SNAPSHOT,
  GET_JOB, GET_JOB_SNAPSHOT, TAG_SNAPSHOT, GET_SNAPSHOT_DISKS, EXPORT_SNAPSHOT_CONFIG, LIST_EXPORT, REMOVE_EXPORT, GET_VIRTUAL_DISK_CHANGES, CONVERT_TO_REFERENCE_POINT,
  GET_REFERENCE_POINTS, DESTROY_REFERENCE_POINT, DESTROY_SNAPSHOT, LEGACY_CHECKPOINT, IMPORT_VM,
];

/** The "# hvbackup:<name>" tag of a script, for messages. */
export function scriptName(script: string): string {
  return /^# hvbackup:([\w-]+)/.exec(script)?.[1] ?? 'script';
}
