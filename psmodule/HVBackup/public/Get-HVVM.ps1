function Get-HVVM {
    <#
    .SYNOPSIS
    Lists the virtual machines HVBackup can back up.

    .DESCRIPTION
    Without -Path, lists the Hyper-V host's VMs (Windows with Hyper-V). With -Path, lists the
    local-host VMs in a folder: VHDX-based VMs kept as folders (each with its configuration
    and disks), as New-HVSandbox creates them. The output pipes into Backup-HVVM.

    .PARAMETER Path
    A folder holding local-host VMs. Omit it to list Hyper-V VMs.

    .PARAMETER Name
    Only VMs whose name matches (wildcards allowed).

    .OUTPUTS
    HVBackup.VM. Name, Id, Host, Location and State of each VM.

    .EXAMPLE
    Get-HVVM

    Lists the Hyper-V VMs on this host.

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
        $params = @{}
        $target = 'Hyper-V host'
        if ($Path) {
            $target = ConvertTo-HVFileSystemPath $Path
            $params['path'] = $target
        }
        try {
            $vms = @(Invoke-HVEngine -Method 'listVMs' -Params $params)
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $target))
        }
        $vms | Where-Object { $_.name -like $Name } | ConvertTo-HVObject -TypeName 'HVBackup.VM'
    }
}
