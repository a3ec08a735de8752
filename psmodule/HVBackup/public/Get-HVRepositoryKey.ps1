function Get-HVRepositoryKey {
    <#
    .SYNOPSIS
    Lists the passwords (key files) of an encrypted repository.

    .DESCRIPTION
    Lists every key file of the repository: when and by whom it was created, which one the
    given password opened (Current), and any that cannot be read (Damaged).

    .PARAMETER Repository
    The encrypted repository's folder. Accepts pipeline input, also by the property name Path.

    .PARAMETER Password
    A current password of the repository.

    .OUTPUTS
    HVBackup.RepositoryKey. Id, Current, Created, Hostname, User, Damaged, Repository.

    .EXAMPLE
    Get-HVRepositoryKey -Repository E:\Secure -Password $current

    Lists the repository's passwords.

    .EXAMPLE
    Get-HVRepositoryKey E:\Secure -Password $current | Where-Object { -not $_.Current } | Remove-HVRepositoryKey -Password $current -WhatIf

    Shows which other passwords would be removed.
    #>
    [CmdletBinding()]
    [OutputType('HVBackup.RepositoryKey')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('Path')]
        [string] $Repository,

        [Parameter(Mandatory)]
        [System.Security.SecureString] $Password
    )
    process {
        $repoPath = ConvertTo-HVFileSystemPath $Repository -Cmdlet $PSCmdlet
        try {
            $keys = @(Invoke-HVEngine -Method 'listRepositoryKeys' -Params @{ repository = $repoPath; password = (ConvertFrom-HVSecureString $Password) })
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $repoPath))
        }
        $keys | ConvertTo-HVRepositoryKey -Repository $repoPath
    }
}
