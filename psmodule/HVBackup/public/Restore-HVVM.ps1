function Restore-HVVM {
    <#
    .SYNOPSIS
    Restores a VM from a restore point, in a repository or on archive media.

    .DESCRIPTION
    Writes the VM's disks and configuration from a restore point into a folder, and on the
    host registers the restored VM (with a new id, under -NewName if given, so it can run
    beside the original). Every restored block is checked against its stored hash. Nothing
    is written outside the -Path folder. -WhatIf prints the engine's restore plan and writes
    nothing. With -MediaPath, the restore point is read from archive media alone (written by
    Export-HVArchive), without the repository.

    .PARAMETER Repository
    The repository folder. Taken from the Repository property of Get-HVRestorePoint output.

    .PARAMETER Id
    The restore point's id (or a unique prefix). Taken from the Id property of Get-HVRestorePoint output.
    With -MediaPath it is optional: the VM's newest restore point on the media is used.

    .PARAMETER VMName
    The VM whose restore point to restore (required with -MediaPath). Taken from the VMName property.

    .PARAMETER MediaPath
    Archive media files to restore from, in order, instead of a repository.

    .PARAMETER Path
    The folder to restore into. Created if needed; existing files are never overwritten.

    .PARAMETER NewName
    A new name for the restored VM.

    .PARAMETER AllowDamaged
    Restores a restore point that Test-HVRestorePoint says is broken: what does not load is
    written as zeros (the disks stay valid), Status is 'partial' and Damaged lists each range,
    and a non-terminating error says so. Without it such a restore fails and writes nothing.

    .PARAMETER Password
    The password of an encrypted repository.

    .OUTPUTS
    HVBackup.RestoreResult. PointId, VMName, Directory, Status and the restored disks.

    .EXAMPLE
    Get-HVRestorePoint -Repository D:\Backups\Repo1 -VMName web01 -Latest | Restore-HVVM -Path D:\Restored

    Restores web01's newest restore point into D:\Restored.

    .EXAMPLE
    Restore-HVVM -Repository D:\Backups\Repo1 -Id 3f2a9c1e -Path D:\Restored -NewName web01-test

    Restores one restore point as a VM named web01-test.

    .EXAMPLE
    Get-HVRestorePoint -Repository D:\Backups\Repo1 -VMName db01 -Latest | Restore-HVVM -Path D:\Restored -WhatIf

    Shows what the restore would write.

    .EXAMPLE
    $r = Restore-HVVM -Repository D:\Backups\Repo1 -Id 3f2a9c1e -Path D:\Salvage -AllowDamaged
    $r.Damaged | Format-Table Disk, Offset, Length, Chunk

    Recovers what a damaged restore point still holds, and lists the byte ranges written as zeros.

    .EXAMPLE
    Restore-HVVM -MediaPath (Get-ChildItem E:\Media\weekly-*.tar | Sort-Object Name).FullName -VMName web01 -Path D:\FromTape

    Restores web01's newest archived restore point from media alone.
    #>
    [CmdletBinding(SupportsShouldProcess, DefaultParameterSetName = 'Repository')]
    [OutputType('HVBackup.RestoreResult')]
    param(
        [Parameter(Mandatory, ValueFromPipelineByPropertyName, ParameterSetName = 'Repository')]
        [string] $Repository,

        [Parameter(Mandatory, ValueFromPipelineByPropertyName, ParameterSetName = 'Repository')]
        [Parameter(ParameterSetName = 'Media')]
        [Alias('PointId', 'RestorePointId')]
        [string] $Id,

        [Parameter(ValueFromPipelineByPropertyName, ParameterSetName = 'Repository')]
        [Parameter(Mandatory, ParameterSetName = 'Media')]
        [string] $VMName,

        [Parameter(Mandatory, ParameterSetName = 'Media')]
        [string[]] $MediaPath,

        [Parameter(Mandatory, Position = 0)]
        [Alias('Destination')]
        [string] $Path,

        [Parameter(ParameterSetName = 'Repository')]
        [string] $NewName,

        [Parameter(ParameterSetName = 'Repository')]
        [switch] $AllowDamaged,

        [Parameter()]
        [System.Security.SecureString] $Password
    )
    process {
        if ($PSCmdlet.ParameterSetName -eq 'Media') {
            Restore-HVVMFromMedia -Cmdlet $PSCmdlet -MediaPath $MediaPath -VMName $VMName -Id $Id -Path $Path -Password $Password
            return
        }
        $repoPath = ConvertTo-HVFileSystemPath $Repository -Cmdlet $PSCmdlet
        $to = ConvertTo-HVFileSystemPath $Path -Cmdlet $PSCmdlet
        $params = @{ repository = $repoPath; point = $Id; to = $to }
        if ($VMName) { $params['vmName'] = $VMName }
        if ($NewName) { $params['newName'] = $NewName }
        if ($AllowDamaged) { $params['allowDamaged'] = $true }
        Add-HVPassword -Params $params -Password $Password
        $label = $Id
        if ($VMName) { $label = "$VMName ($Id)" }
        $description = "Restore restore point $label to '$to'"
        if (Test-HVPlanWanted) {
            $planParams = $params.Clone()
            $planParams['whatIf'] = $true
            try {
                $plan = Invoke-HVEngine -Method 'restoreVM' -Params $planParams
            } catch {
                $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $Id))
            }
            $description = Format-HVPlan -Heading $description -Plan (Get-HVProperty $plan 'plan')
        }
        if (-not $PSCmdlet.ShouldProcess($description, "Restore $label to '$to'?", 'Restore-HVVM')) { return }
        try {
            $result = Invoke-HVEngine -Method 'restoreVM' -Params $params | ConvertTo-HVObject -TypeName 'HVBackup.RestoreResult'
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $Id))
        }
        if ($result.Status -eq 'partial') {
            $damaged = @($result.Damaged)
            $bytes = ($damaged | Measure-Object -Property Length -Sum).Sum
            $info = [pscustomobject]@{ code = 'ERR_CORRUPT'; message = "restored with $($damaged.Count) damaged range(s), $bytes bytes written as zeros (see the Damaged property)" }
            $PSCmdlet.WriteError((New-HVResultErrorRecord -ErrorInfo $info -TargetObject $Id -Context "Restore of $label to '$to'"))
        }
        $result
    }
}
