function Repair-HVRepository {
    <#
    .SYNOPSIS
    Verifies a whole repository and takes missing or damaged data out of its index, so backups store it again.

    .DESCRIPTION
    Verifies every restore point as Test-HVRestorePoint does, then, holding the repository to
    itself, takes every chunk it found missing or damaged out of the index. Without that, no
    backup would store those bytes again (the index says they are there) and an incremental
    would name them again in every new restore point. The next backup of each VM whose newest
    restore point names such a chunk reads its disks whole and stores again what they still
    hold, which also mends the older restore points that need those same bytes. Data no disk
    holds any more stays lost: Test-HVRestorePoint keeps naming the restore points it breaks.

    Problems found are written as non-terminating errors (category InvalidData), besides the
    report, whose Repair property says what was changed. Asks for confirmation unless
    -Confirm:$false is given; -WhatIf changes nothing.

    .PARAMETER Repository
    The repository folder. Taken from the Repository property of pipeline input.

    .PARAMETER Quick
    Reads no chunk data (as Test-HVRestorePoint -Quick): repairs only chunks whose pack file is
    gone or cut short, in seconds. Without it every chunk is read and checked.

    .PARAMETER Password
    The password of an encrypted repository.

    .OUTPUTS
    HVBackup.VerifyReport. OK and Problems as found before the repair; Repair: IndexObjectsRemoved,
    PacksRescued, ChunksRemoved, PacksRewritten, PacksRemoved and PointsToRescan.

    .EXAMPLE
    Repair-HVRepository -Repository D:\Backups\Repo1 -Confirm:$false

    Verifies the repository and repairs its index; the next Backup-HVVM of the affected VMs reads their disks whole.

    .EXAMPLE
    if (-not (Test-HVRestorePoint -Repository D:\Backups\Repo1 -ErrorAction SilentlyContinue).OK) { Repair-HVRepository -Repository D:\Backups\Repo1 -Confirm:$false }

    Repairs only when a check found damage.
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
    [OutputType('HVBackup.VerifyReport')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('Path')]
        [string] $Repository,

        [Parameter()]
        [switch] $Quick,

        [Parameter()]
        [System.Security.SecureString] $Password
    )
    process {
        $repoPath = ConvertTo-HVFileSystemPath $Repository -Cmdlet $PSCmdlet
        $description = "Verify repository '$repoPath' and take every missing or damaged chunk out of its index (holding the repository to itself)"
        if (-not $PSCmdlet.ShouldProcess($description, "Repair repository '${repoPath}'?", 'Repair-HVRepository')) { return }
        $params = @{ repository = $repoPath; repair = $true }
        if ($Quick) { $params['quick'] = $true }
        Add-HVPassword -Params $params -Password $Password
        $report = Invoke-HVVerifyReport -Params $params -Repository $repoPath -Cmdlet $PSCmdlet
        $repair = Get-HVProperty $report 'Repair'
        if ($repair -and $repair.ChunksRemoved -gt 0) {
            Write-Warning "Took $($repair.ChunksRemoved) missing or damaged chunk(s) out of the index of '$repoPath'. The next backup of the VMs of $(@($repair.PointsToRescan).Count) restore point(s) reads their disks whole."
        }
        $report
    }
}
