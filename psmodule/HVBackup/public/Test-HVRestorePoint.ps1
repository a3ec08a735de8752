function Test-HVRestorePoint {
    <#
    .SYNOPSIS
    Verifies restore points: every chunk they need is present and intact.

    .DESCRIPTION
    Reads every object a restore point (or, without -Id, the whole repository) depends on
    and checks its hash, and reports what is missing or damaged and which restore points
    that breaks. Problems are written as non-terminating errors (category InvalidData)
    besides the report.

    .PARAMETER Repository
    The repository folder. Taken from the Repository property of Get-HVRestorePoint output.

    .PARAMETER Id
    The restore point to verify. Omit it to verify the whole repository.

    .PARAMETER Quick
    Reads no chunk data: checks that every chunk the restore points name is listed in the
    index, in a pack file that exists and is long enough. Finds lost or cut files in seconds;
    damage inside a file needs the full check.

    .PARAMETER ReadSubset
    Reads only part n of m of the chunk data, written n/m (by chunk id: the parts 1/m to m/m
    read every chunk once), so a repository too large to read every night is read over m nights.

    .PARAMETER Password
    The password of an encrypted repository.

    .OUTPUTS
    HVBackup.VerifyReport. OK, PointsChecked, ChunksChecked, BytesChecked and Problems.

    .EXAMPLE
    Test-HVRestorePoint -Repository D:\Backups\Repo1

    Verifies the whole repository.

    .EXAMPLE
    Get-HVRestorePoint -Repository D:\Backups\Repo1 -Latest | Test-HVRestorePoint

    Verifies the newest restore point of each VM.

    .EXAMPLE
    Test-HVRestorePoint -Repository \\nas\backups\repo1 -Quick

    Checks a large repository's structure every night without reading its data.

    .EXAMPLE
    Test-HVRestorePoint -Repository \\nas\backups\repo1 -ReadSubset "$([int](Get-Date).DayOfWeek + 1)/7"

    Reads a seventh of the data each night: all of it every week.

    .EXAMPLE
    if (-not (Test-HVRestorePoint -Repository D:\Backups\Repo1 -ErrorAction SilentlyContinue).OK) { Send-Alert }

    Runs a check in a scheduled task and alerts on damage.
    #>
    [CmdletBinding()]
    [OutputType('HVBackup.VerifyReport')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('Path')]
        [string] $Repository,

        [Parameter(ValueFromPipelineByPropertyName)]
        [Alias('PointId')]
        [string] $Id,

        [Parameter()]
        [switch] $Quick,

        [Parameter()]
        [ValidatePattern('^\d+/\d+$')]
        [string] $ReadSubset,

        [Parameter()]
        [System.Security.SecureString] $Password
    )
    process {
        $repoPath = ConvertTo-HVFileSystemPath $Repository -Cmdlet $PSCmdlet
        $params = @{ repository = $repoPath }
        if ($Id) { $params['pointId'] = $Id }
        if ($Quick) { $params['quick'] = $true }
        if ($ReadSubset) {
            $n, $m = $ReadSubset -split '/'
            $params['readSubset'] = @{ part = [int]$n; of = [int]$m }
        }
        Add-HVPassword -Params $params -Password $Password
        Invoke-HVVerifyReport -Params $params -Repository $repoPath -Cmdlet $PSCmdlet
    }
}
