function Backup-HVVM {
    <#
    .SYNOPSIS
    Backs up virtual machines to an HVBackup repository.

    .DESCRIPTION
    Takes a consistent backup of each VM (application-consistent where the guest allows it,
    else crash-consistent) and stores it as a new restore point in the repository. Only
    changed blocks are read when change tracking allows it; -Full reads every block.
    VMs come from the pipeline: Get-VM (Hyper-V), Get-HVVM (local-host VMs) or names.
    A VM that fails is reported as a non-terminating error and the other VMs go on; a
    repository that is missing or broken stops the command. -WhatIf prints the steps the
    engine would take for each VM and changes nothing.

    .PARAMETER Name
    The VM's name. Accepts pipeline input by value and by the property names Name and VMName.

    .PARAMETER VMId
    The VM's id (Hyper-V VMId). Taken from the Id property of Get-VM or Get-HVVM output.

    .PARAMETER Location
    A local-host VM's folder. Taken from the Location property of Get-HVVM output.

    .PARAMETER VMHost
    The host driver: 'hyperv' or 'local'. Taken from the Host property of Get-HVVM output.
    When absent, a VM given only by -Location is local, anything else is a Hyper-V VM.

    .PARAMETER Repository
    The repository folder to back up to.

    .PARAMETER Password
    The password of an encrypted repository.

    .PARAMETER Full
    Read and store every block, even when changed-block tracking is available. Incremental
    backups store a partly changed 256 KiB slice as its changed 64 KiB pieces, pointing the
    others into older chunks; a full backup stores every slice whole again, so a restore of the
    points after it reads one chunk per slice.

    .PARAMETER AllowUserCheckpoints
    Hyper-V only: back up a VM that has user (standard or production) checkpoints instead of
    refusing it. Change tracking is not trusted across user checkpoints, so such a backup reads
    every allocated block (a scan) and the restore point says why.

    .PARAMETER HostStepTimeoutSec
    Hyper-V only: seconds one PowerShell step of the driver (a query, a WMI call, a job poll)
    may take before the host is taken for hung and the VM's backup fails, instead of waiting
    for ever. Default 300; 0 means no limit. Import, merge and Checkpoint-VM steps have none.

    .PARAMETER ThrottleLimit
    How many VMs to back up at the same time (default: the engine's choice).

    .OUTPUTS
    HVBackup.BackupResult. One per VM that was backed up: VMName, Status, PointId, Method, TotalBytes, ReadBytes, StoredBytes.

    .EXAMPLE
    Get-VM web01, db01 | Backup-HVVM -Repository D:\Backups\Repo1

    Backs up two Hyper-V VMs.

    .EXAMPLE
    Get-HVVM -Path D:\LabVMs | Backup-HVVM -Repository D:\Backups\Repo1 -WhatIf

    Shows, for each local-host VM, what a backup would do.

    .EXAMPLE
    Backup-HVVM -Name web01 -Repository D:\Backups\Repo1 -Full -ErrorVariable failed

    Takes a full backup of web01; failures land in $failed.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HVBackup.BackupResult')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('VMName')]
        [string] $Name,

        [Parameter(ValueFromPipelineByPropertyName)]
        [Alias('Id')]
        [string] $VMId,

        [Parameter(ValueFromPipelineByPropertyName)]
        [Alias('Path')]
        [string] $Location,

        [Parameter(ValueFromPipelineByPropertyName)]
        [Alias('Host')]
        [ValidateSet('local', 'hyperv')]
        [string] $VMHost,

        [Parameter(Mandatory, ValueFromPipelineByPropertyName)]
        [string] $Repository,

        [Parameter()]
        [System.Security.SecureString] $Password,

        [Parameter()]
        [switch] $Full,

        [Parameter()]
        [switch] $AllowUserCheckpoints,

        [Parameter()]
        [ValidateRange(0, 86400)]
        [int] $HostStepTimeoutSec,

        [Parameter()]
        [ValidateRange(1, 64)]
        [int] $ThrottleLimit
    )
    begin {
        $batch = New-Object System.Collections.Generic.List[hashtable]
    }
    process {
        $repoPath = ConvertTo-HVFileSystemPath $Repository -Cmdlet $PSCmdlet
        $base = @{ repository = $repoPath; full = [bool]$Full }
        if ($ThrottleLimit) { $base['parallel'] = $ThrottleLimit }
        $hyperv = @{}
        if ($AllowUserCheckpoints) { $hyperv['allowUserCheckpoints'] = $true }
        if ($PSBoundParameters.ContainsKey('HostStepTimeoutSec')) { $hyperv['stepTimeoutSeconds'] = $HostStepTimeoutSec }
        if ($hyperv.Count -gt 0) { $base['hyperv'] = $hyperv }
        Add-HVPassword -Params $base -Password $Password
        try {
            $item = Resolve-HVBackupSource -Name $Name -VMId $VMId -Location $Location -VMHost $VMHost
        } catch {
            $PSCmdlet.WriteError((New-HVErrorRecord -ErrorObject $_ -TargetObject $Name))
            return
        }
        $item['Base'] = $base
        $description = "Back up VM '$Name' to repository '$repoPath'"
        if (Test-HVPlanWanted) {
            $params = $base.Clone()
            $params['host'] = $item.Host
            $params['sources'] = @($item.Source)
            $params['whatIf'] = $true
            if ($item.Host -eq 'local') { $params['root'] = (Get-Location -PSProvider FileSystem).ProviderPath }
            try {
                $planned = @(Invoke-HVEngine -Method 'backupVMs' -Params $params)
            } catch {
                $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $repoPath))
            }
            if ($planned.Count -gt 0 -and $planned[0].status -eq 'failed') {
                $PSCmdlet.WriteError((New-HVResultErrorRecord -ErrorInfo $planned[0].error -TargetObject $Name -Context "Backup of VM '$Name' cannot run"))
                return
            }
            if ($planned.Count -gt 0) { $description = Format-HVPlan -Heading $description -Plan (Get-HVProperty $planned[0] 'plan') }
        }
        if ($PSCmdlet.ShouldProcess($description, "Back up VM '$Name'?", 'Backup-HVVM')) {
            $batch.Add($item)
        }
    }
    end {
        if ($batch.Count -gt 0) { Invoke-HVBackupBatch -Cmdlet $PSCmdlet -Batch $batch.ToArray() }
    }
}
