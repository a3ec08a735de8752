function Get-HVRepository {
    <#
    .SYNOPSIS
    Gets an HVBackup repository's details and statistics.

    .DESCRIPTION
    Reads a repository and reports its format, encryption, compression, how many restore
    points and VMs it holds, and how much space deduplication and compression save
    (logical bytes of all restore points versus bytes stored).

    .PARAMETER Path
    The repository folder. Accepts pipeline input, also by the property names Repository and FullName.

    .PARAMETER Password
    The password of an encrypted repository.

    .OUTPUTS
    HVBackup.Repository. Path, Id, Encrypted, RestorePoints, VMs, LogicalBytes, StoredBytes, DedupeRatio and more.

    .EXAMPLE
    Get-HVRepository -Path D:\Backups\Repo1

    Shows the repository's statistics.

    .EXAMPLE
    'D:\Backups\Repo1', 'E:\Repo2' | Get-HVRepository | Select-Object Path, RestorePoints, StoredBytes

    Compares two repositories.

    .EXAMPLE
    Get-HVRepository -Path E:\Secure -Password (Read-Host -AsSecureString)

    Reads an encrypted repository.
    #>
    [CmdletBinding()]
    [OutputType('HVBackup.Repository')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('Repository', 'FullName')]
        [string] $Path,

        [Parameter(ValueFromPipelineByPropertyName)]
        [System.Security.SecureString] $Password
    )
    process {
        $fsPath = ConvertTo-HVFileSystemPath $Path -Cmdlet $PSCmdlet
        $params = @{ path = $fsPath }
        Add-HVPassword -Params $params -Password $Password
        try {
            Invoke-HVEngine -Method 'getRepositoryStats' -Params $params | ConvertTo-HVObject -TypeName 'HVBackup.Repository'
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $fsPath))
        }
    }
}
