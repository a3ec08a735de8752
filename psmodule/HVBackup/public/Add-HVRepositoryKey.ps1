function Add-HVRepositoryKey {
    <#
    .SYNOPSIS
    Adds a password to an encrypted repository.

    .DESCRIPTION
    Writes a new key file that opens the repository with -NewPassword; the repository's data
    is not rewritten and the existing passwords keep working. Proving a current password
    (-Password) is required.

    .PARAMETER Repository
    The encrypted repository's folder.

    .PARAMETER Password
    A current password of the repository.

    .PARAMETER NewPassword
    The password to add.

    .OUTPUTS
    HVBackup.RepositoryKey. The new key file's Id, Created, Hostname and User.

    .EXAMPLE
    Add-HVRepositoryKey -Repository E:\Secure -Password $current -NewPassword (Read-Host -AsSecureString 'New password')

    Adds a second password, e.g. for a colleague or a sealed envelope.

    .EXAMPLE
    Get-HVRepository E:\Secure -Password $current | Add-HVRepositoryKey -Password $current -NewPassword $escrow

    Adds an escrow password to a repository from the pipeline.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HVBackup.RepositoryKey')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('Path')]
        [string] $Repository,

        [Parameter(Mandatory)]
        [System.Security.SecureString] $Password,

        [Parameter(Mandatory)]
        [System.Security.SecureString] $NewPassword
    )
    process {
        $repoPath = ConvertTo-HVFileSystemPath $Repository -Cmdlet $PSCmdlet
        if (-not $PSCmdlet.ShouldProcess($repoPath, 'Add a password (key file)')) { return }
        $params = Get-HVKeyChangeParams -Repository $repoPath -Password $Password -NewPassword $NewPassword
        try {
            Invoke-HVEngine -Method 'addRepositoryKey' -Params $params | ConvertTo-HVRepositoryKey -Repository $repoPath
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $repoPath))
        }
    }
}
