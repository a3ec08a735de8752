function Remove-HVRestorePoint {
    <#
    .SYNOPSIS
    Removes restore points from an HVBackup repository.

    .DESCRIPTION
    Removes restore points and the stored data no other restore point needs. Asks for
    confirmation unless -Confirm:$false is given. -WhatIf prints what the engine would
    remove and removes nothing.

    .PARAMETER Repository
    The repository folder. Taken from the Repository property of Get-HVRestorePoint output.

    .PARAMETER Id
    The restore point's id. Taken from the Id property of Get-HVRestorePoint output.

    .PARAMETER Password
    The password of an encrypted repository.

    .OUTPUTS
    HVBackup.RemoveResult. The ids removed and the status.

    .EXAMPLE
    Get-HVRestorePoint -Repository D:\Backups\Repo1 | Where-Object CreatedAt -lt (Get-Date).AddDays(-30) | Remove-HVRestorePoint -WhatIf

    Shows what removing the restore points older than 30 days would do.

    .EXAMPLE
    Remove-HVRestorePoint -Repository D:\Backups\Repo1 -Id 3f2a9c1e -Confirm:$false

    Removes one restore point without asking.

    .EXAMPLE
    Get-HVRestorePoint -Repository D:\Backups\Repo1 -VMName old01 | Remove-HVRestorePoint

    Removes every restore point of VM old01, asking for each.
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
    [OutputType('HVBackup.RemoveResult')]
    param(
        [Parameter(Mandatory, ValueFromPipelineByPropertyName)]
        [string] $Repository,

        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('PointId', 'RestorePointId')]
        [string[]] $Id,

        [Parameter()]
        [System.Security.SecureString] $Password
    )
    process {
        $repoPath = ConvertTo-HVFileSystemPath $Repository -Cmdlet $PSCmdlet
        foreach ($pointId in $Id) {
            $params = @{ repository = $repoPath; ids = @($pointId) }
            Add-HVPassword -Params $params -Password $Password
            try {
                $description = "Remove restore point $pointId from repository '$repoPath'"
                if (Test-HVPlanWanted -Impact High) {
                    $planParams = $params.Clone()
                    $planParams['whatIf'] = $true
                    $plan = Invoke-HVEngine -Method 'removeRestorePoints' -Params $planParams
                    $lines = @(Get-HVProperty $plan 'plan')
                    if ($null -eq $lines[0]) { $lines = @($plan.ids | ForEach-Object { "delete the manifest of restore point $_ (its chunks stay until garbage collection)" }) }
                    $description = Format-HVPlan -Heading $description -Plan $lines
                }
                $confirmed = $PSCmdlet.ShouldProcess($description, "Remove restore point ${pointId}?", 'Remove-HVRestorePoint')
                if ($confirmed) {
                    Invoke-HVEngine -Method 'removeRestorePoints' -Params $params | ConvertTo-HVObject -TypeName 'HVBackup.RemoveResult'
                }
            } catch {
                $PSCmdlet.WriteError((New-HVErrorRecord -ErrorObject $_ -TargetObject $pointId))
            }
        }
    }
}
