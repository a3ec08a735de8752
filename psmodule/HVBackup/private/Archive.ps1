function Get-HVArchiveParams {
    # The engine params Export-HVArchive and Start-HVArchiveWatch share: the repository, the
    # media pool and its target (a folder of media files or a tape device), the VM filter and
    # the password.
    [CmdletBinding()]
    [OutputType([hashtable])]
    param(
        [System.Management.Automation.PSCmdlet] $Cmdlet, [string] $Repository, [string] $Pool,
        [string] $MediaPath, [string] $Device, [string] $Capacity, [int] $RetentionDays,
        [string] $VMName, [System.Security.SecureString] $Password
    )
    $params = @{ repository = (ConvertTo-HVFileSystemPath $Repository -Cmdlet $Cmdlet); pool = $Pool }
    if ($MediaPath) { $params['mediaDir'] = ConvertTo-HVFileSystemPath $MediaPath -Cmdlet $Cmdlet }
    if ($Device) { $params['device'] = $Device }
    if ($Capacity) { $params['capacity'] = $Capacity }
    if ($RetentionDays -gt 0) { $params['retentionDays'] = $RetentionDays }
    if ($VMName) { $params['vmName'] = $VMName }
    Add-HVPassword -Params $params -Password $Password
    $params
}

function Restore-HVVMFromMedia {
    # Restore-HVVM -MediaPath: a restore point read from archive media alone.
    [CmdletBinding()]
    param([System.Management.Automation.PSCmdlet] $Cmdlet, [string[]] $MediaPath, [string] $VMName, [string] $Id, [string] $Path, [System.Security.SecureString] $Password)
    $media = @($MediaPath | ForEach-Object { ConvertTo-HVFileSystemPath $_ -Cmdlet $Cmdlet })
    $to = ConvertTo-HVFileSystemPath $Path -Cmdlet $Cmdlet
    $params = @{ media = $media; vmName = $VMName; to = $to }
    if ($Id) { $params['point'] = $Id }
    Add-HVPassword -Params $params -Password $Password
    $which = "the newest restore point of VM '$VMName'"
    if ($Id) { $which = "restore point $Id of VM '$VMName'" }
    if (-not $Cmdlet.ShouldProcess("Restore $which from $($media.Count) archive medium/media to '$to'", "Restore $which to '$to'?", 'Restore-HVVM')) { return }
    try {
        $r = Invoke-HVEngine -Method 'restoreFromArchive' -Params $params
    } catch {
        $Cmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject ($media -join ', ')))
    }
    $obj = ConvertTo-HVObject -InputObject $r -TypeName 'HVBackup.RestoreResult'
    $obj | Add-Member -NotePropertyName 'Status' -NotePropertyValue 'success' -PassThru
}
