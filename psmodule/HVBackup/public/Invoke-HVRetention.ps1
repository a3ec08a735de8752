function Invoke-HVRetention {
    <#
    .SYNOPSIS
    Applies a retention policy: removes the restore points the policy does not keep.

    .DESCRIPTION
    Keeps the newest -KeepLast restore points of each VM plus, grandfather-father-son style,
    the newest point of each of the last -Daily days, -Weekly weeks, -Monthly months and
    -Yearly years, and removes the others. With -Prune, the chunks no remaining restore point
    references are deleted too (garbage collection). -WhatIf prints the engine's decision for
    every restore point (keep or remove, and why) and removes nothing.

    .PARAMETER Repository
    The repository folder. Taken from the Path or Repository property of piped objects.

    .PARAMETER KeepLast
    Keep the newest N restore points of each VM.

    .PARAMETER Daily
    Keep the newest restore point of each of the last N days.

    .PARAMETER Weekly
    Keep the newest restore point of each of the last N weeks.

    .PARAMETER Monthly
    Keep the newest restore point of each of the last N months.

    .PARAMETER Yearly
    Keep the newest restore point of each of the last N years.

    .PARAMETER VMName
    Apply the policy to this VM's restore points only.

    .PARAMETER Prune
    Also delete the chunks that no remaining restore point references.

    .PARAMETER Password
    The password of an encrypted repository.

    .OUTPUTS
    HVBackup.RetentionResult. Status, Removed, Kept, the decision per restore point (Points) and, with -Prune, the garbage collection result (Gc).

    .EXAMPLE
    Invoke-HVRetention -Repository D:\Backups\Repo1 -KeepLast 7 -Weekly 4 -Monthly 12 -WhatIf

    Shows which restore points a 7-last/4-weekly/12-monthly policy would remove.

    .EXAMPLE
    Invoke-HVRetention -Repository D:\Backups\Repo1 -KeepLast 14 -Prune -Confirm:$false

    Keeps the last 14 restore points of each VM and frees the space of the others.

    .EXAMPLE
    Get-HVRepository D:\Backups\Repo1 | Invoke-HVRetention -Daily 7 -VMName web01

    Keeps one restore point per day for a week, for web01 only.
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
    [OutputType('HVBackup.RetentionResult')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('Path')]
        [string] $Repository,

        [Parameter()] [ValidateRange(0, 100000)] [int] $KeepLast = -1,
        [Parameter()] [ValidateRange(0, 100000)] [int] $Daily = -1,
        [Parameter()] [ValidateRange(0, 100000)] [int] $Weekly = -1,
        [Parameter()] [ValidateRange(0, 100000)] [int] $Monthly = -1,
        [Parameter()] [ValidateRange(0, 100000)] [int] $Yearly = -1,

        [Parameter(ValueFromPipelineByPropertyName)]
        [string] $VMName,

        [Parameter()]
        [switch] $Prune,

        [Parameter()]
        [System.Security.SecureString] $Password
    )
    process {
        $repoPath = ConvertTo-HVFileSystemPath $Repository -Cmdlet $PSCmdlet
        $params = @{ repository = $repoPath; prune = [bool]$Prune }
        foreach ($name in 'KeepLast', 'Daily', 'Weekly', 'Monthly', 'Yearly') {
            $value = Get-Variable -Name $name -ValueOnly
            if ($value -ge 0) { $params[$name.Substring(0, 1).ToLowerInvariant() + $name.Substring(1)] = $value }
        }
        if ($VMName) { $params['vmName'] = $VMName }
        Add-HVPassword -Params $params -Password $Password
        try {
            $description = "Apply retention to repository '$repoPath'"
            if (Test-HVPlanWanted -Impact High) {
                $planParams = $params.Clone()
                $planParams['whatIf'] = $true
                $plan = Invoke-HVEngine -Method 'applyRetention' -Params $planParams
                $lines = @($plan.points | ForEach-Object { '{0} {1} of {2} ({3}): {4}' -f $_.action, $_.id.Substring(0, 12), $_.vm, $_.createdAt, (@($_.reasons) -join '; ') })
                $description = Format-HVPlan -Heading "$description (remove $($plan.removed), keep $($plan.kept))" -Plan $lines
            }
            $confirmed = $PSCmdlet.ShouldProcess($description, "Remove the restore points the policy does not keep from '$repoPath'?", 'Invoke-HVRetention')
            if ($confirmed) {
                Invoke-HVEngine -Method 'applyRetention' -Params $params | ConvertTo-HVObject -TypeName 'HVBackup.RetentionResult'
            }
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $repoPath))
        }
    }
}
