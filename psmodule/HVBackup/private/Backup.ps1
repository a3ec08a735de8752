function Resolve-HVBackupSource {
    # Which engine host and source reference a Backup-HVVM input stands for:
    # -VMHost when given; else a local-host VM when only a location is known (no VM id),
    # else Hyper-V (Get-VM output carries Name, Id and Path). Hyper-V VMs go by id, then name.
    [CmdletBinding()]
    [OutputType([hashtable])]
    param([string] $Name, [string] $VMId, [string] $Location, [string] $VMHost)
    $kind = $VMHost
    if (-not $kind) {
        if ($Location -and -not $VMId) { $kind = 'local' } else { $kind = 'hyperv' }
    }
    if ($kind -eq 'local') {
        $source = $Name
        if ($Location) { $source = ConvertTo-HVFileSystemPath $Location }
    } else {
        $source = $Name
        if ($VMId) { $source = $VMId }
    }
    @{ Host = $kind; Source = $source; Name = $Name }
}

function Invoke-HVBackupBatch {
    # Back up the approved VMs, one engine call per repository and host kind; a failed VM is a
    # non-terminating error and the others go on.
    [CmdletBinding()]
    param([System.Management.Automation.PSCmdlet] $Cmdlet, [object[]] $Batch)
    foreach ($group in @($Batch | Group-Object { $_.Host + '|' + $_.Base.repository })) {
        $params = $group.Group[0].Base.Clone()
        $params['host'] = $group.Group[0].Host
        # Local VM names resolve against the caller's current folder, not the engine's.
        if ($params['host'] -eq 'local') { $params['root'] = (Get-Location -PSProvider FileSystem).ProviderPath }
        # Hyper-V driver options mean nothing to the local host.
        if ($params['host'] -ne 'hyperv') { $params.Remove('hyperv') }
        $params['sources'] = @($group.Group | ForEach-Object { $_.Source })
        try {
            $results = @(Invoke-HVEngine -Method 'backupVMs' -Params $params)
        } catch {
            $Cmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $params['repository']))
        }
        foreach ($r in $results) {
            $obj = ConvertTo-HVObject -InputObject $r -TypeName 'HVBackup.BackupResult'
            if ($r.status -eq 'failed') {
                $Cmdlet.WriteError((New-HVResultErrorRecord -ErrorInfo $r.error -TargetObject $obj -Context "Backup of VM '$($r.vmName)' failed"))
            } else {
                $Cmdlet.WriteObject($obj)
            }
        }
    }
}
