function Get-HVVM {
    <#
    .SYNOPSIS
    Lists the virtual machines HVBackup can back up.

    .DESCRIPTION
    Lists the local-host VMs in a folder: VHDX-based VMs kept as folders (each with its
    configuration and disks), as New-HVSandbox creates them. The output pipes into
    Backup-HVVM. For Hyper-V VMs use Get-VM: its output pipes into Backup-HVVM as well.

    .PARAMETER Path
    A folder holding local-host VMs (default: the current folder).

    .PARAMETER Name
    Only VMs whose name matches (wildcards allowed).

    .OUTPUTS
    HVBackup.VM. Name, Id, Host, Location and State of each VM.

    .EXAMPLE
    Get-HVVM

    Lists the local-host VMs in the current folder.

    .EXAMPLE
    Get-HVVM -Path D:\LabVMs | Backup-HVVM -Repository D:\Backups\Repo1

    Backs up every local-host VM in D:\LabVMs.

    .EXAMPLE
    Get-HVVM -Path D:\LabVMs -Name web*

    Lists the VMs whose name starts with "web".
    #>
    [CmdletBinding()]
    [OutputType('HVBackup.VM')]
    param(
        [Parameter(Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'Folder')]
        [string] $Path,

        [Parameter()]
        [SupportsWildcards()]
        [string] $Name = '*'
    )
    process {
        if (-not $Path) { $Path = '.' }
        $target = ConvertTo-HVFileSystemPath $Path -Cmdlet $PSCmdlet
        $params = @{ path = $target }
        try {
            $vms = @(Invoke-HVEngine -Method 'listVMs' -Params $params)
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $target))
        }
        $vms | Where-Object { $_.name -like $Name } | ConvertTo-HVObject -TypeName 'HVBackup.VM'
    }
}
