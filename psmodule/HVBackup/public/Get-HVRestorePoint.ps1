function Get-HVRestorePoint {
    <#
    .SYNOPSIS
    Lists the restore points in an HVBackup repository.

    .DESCRIPTION
    Lists restore points, newest last, optionally only those of one VM, only the latest per
    VM, or those with given ids. The output pipes into Restore-HVVM, Test-HVRestorePoint and
    Remove-HVRestorePoint.

    .PARAMETER Repository
    The repository folder. Accepts pipeline input, also by the property names Path and FullName (Get-HVRepository output).

    .PARAMETER VMName
    Only restore points of this VM.

    .PARAMETER Latest
    Only the newest restore point of each VM.

    .PARAMETER Id
    Only restore points with these ids (wildcards allowed, e.g. a short prefix followed by *).

    .PARAMETER Password
    The password of an encrypted repository.

    .OUTPUTS
    HVBackup.RestorePoint. Id, VMName, CreatedAt, Consistency, Method, TotalBytes, StoredBytes, Repository.

    .EXAMPLE
    Get-HVRestorePoint -Repository D:\Backups\Repo1

    Lists every restore point.

    .EXAMPLE
    Get-HVRestorePoint -Repository D:\Backups\Repo1 -VMName web01 -Latest | Restore-HVVM -Path D:\Restored

    Restores web01's newest restore point.

    .EXAMPLE
    Get-HVRestorePoint -Repository D:\Backups\Repo1 | Where-Object CreatedAt -lt (Get-Date).AddDays(-30) | Remove-HVRestorePoint -WhatIf

    Shows which restore points older than 30 days would be removed.
    #>
    [CmdletBinding()]
    [OutputType('HVBackup.RestorePoint')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('Path', 'FullName')]
        [string] $Repository,

        [Parameter(ValueFromPipelineByPropertyName)]
        [Alias('Name')]
        [string] $VMName,

        [Parameter()]
        [switch] $Latest,

        [Parameter()]
        [SupportsWildcards()]
        [string[]] $Id,

        [Parameter()]
        [System.Security.SecureString] $Password
    )
    process {
        $repoPath = ConvertTo-HVFileSystemPath $Repository -Cmdlet $PSCmdlet
        $params = @{ repository = $repoPath; latest = [bool]$Latest }
        if ($VMName) { $params['vmName'] = $VMName }
        Add-HVPassword -Params $params -Password $Password
        try {
            $points = @(Invoke-HVEngine -Method 'listRestorePoints' -Params $params)
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $repoPath))
        }
        foreach ($p in $points) {
            if ($Id) {
                $match = $false
                foreach ($pattern in $Id) { if ($p.id -like $pattern) { $match = $true } }
                if (-not $match) { continue }
            }
            ConvertTo-HVObject -InputObject $p -TypeName 'HVBackup.RestorePoint'
        }
    }
}
