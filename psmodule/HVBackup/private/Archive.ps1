function Get-HVArchiveTarget {
    # The media target of an archive cmdlet: a folder of media files or a tape device.
    [CmdletBinding()]
    [OutputType([hashtable])]
    param([System.Management.Automation.PSCmdlet] $Cmdlet, [string] $MediaPath, [string] $Device, [string] $Capacity, [int] $RetentionDays)
    $target = @{}
    if ($MediaPath) { $target['mediaDir'] = ConvertTo-HVFileSystemPath $MediaPath -Cmdlet $Cmdlet }
    if ($Device) { $target['device'] = $Device }
    if ($Capacity) { $target['capacity'] = $Capacity }
    if ($RetentionDays -gt 0) { $target['retentionDays'] = $RetentionDays }
    $target
}
