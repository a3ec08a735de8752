# Engine results (JSON, camelCase, ISO dates) -> typed PowerShell objects (PascalCase,
# [datetime] local times, [long] byte counts) with an HVBackup.* PSTypeName for the views.

$script:HVPropertyNames = @{ id = 'Id'; vmName = 'VMName'; vmId = 'VMId'; vmPaths = 'VMPaths'; pointId = 'PointId'; ok = 'OK'; vms = 'VMs'; vmsToRescan = 'VMsToRescan' }

function ConvertTo-HVPropertyName {
    param([string] $Name)
    if ($script:HVPropertyNames.ContainsKey($Name)) { return $script:HVPropertyNames[$Name] }
    $Name.Substring(0, 1).ToUpperInvariant() + $Name.Substring(1)
}

function ConvertTo-HVDateTime {
    param([object] $Value)
    if ($Value -is [datetime]) { return $Value.ToLocalTime() }
    $styles = [System.Globalization.DateTimeStyles]::RoundtripKind
    [datetime]::Parse([string]$Value, [System.Globalization.CultureInfo]::InvariantCulture, $styles).ToLocalTime()
}

function ConvertTo-HVValue {
    param([string] $Name, [object] $Value)
    if ($null -eq $Value) { return $null }
    if ($Name -match '(At|Created|Since)$' -and ($Value -is [string] -or $Value -is [datetime])) { return ConvertTo-HVDateTime $Value }
    if ($Name -match '(Bytes|Size|Count|Checked|Points|VMs)$' -and ($Value -is [int] -or $Value -is [long] -or $Value -is [double] -or $Value -is [decimal])) {
        return [long]$Value
    }
    if ($Value -is [System.Management.Automation.PSCustomObject]) { return ConvertTo-HVObject -InputObject $Value }
    if ($Value -is [System.Array]) { return ,@($Value | ForEach-Object { ConvertTo-HVValue -Name '' -Value $_ }) }
    $Value
}

function ConvertTo-HVObject {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, ValueFromPipeline)] [AllowNull()] [object] $InputObject,
        [string] $TypeName
    )
    process {
        if ($null -eq $InputObject) { return }
        $props = [ordered]@{}
        foreach ($p in $InputObject.PSObject.Properties) {
            $name = ConvertTo-HVPropertyName $p.Name
            $props[$name] = ConvertTo-HVValue -Name $name -Value $p.Value
        }
        $obj = New-Object -TypeName PSObject -Property $props
        if ($TypeName) { $obj.PSObject.TypeNames.Insert(0, $TypeName) }
        $obj
    }
}

function ConvertFrom-HVSecureString {
    # The engine needs the password itself; it crosses only the local pipe to the engine.
    [CmdletBinding()]
    [OutputType([string])]
    param([System.Security.SecureString] $SecureString)
    if ($null -eq $SecureString) { return $null }
    $ptr = [System.Runtime.InteropServices.Marshal]::SecureStringToBSTR($SecureString)
    try { [System.Runtime.InteropServices.Marshal]::PtrToStringBSTR($ptr) } finally { [System.Runtime.InteropServices.Marshal]::ZeroFreeBSTR($ptr) }
}

function Add-HVPassword {
    # Add the repository password (from -Password or -Credential) to engine params.
    [CmdletBinding()]
    param([hashtable] $Params, [System.Security.SecureString] $Password, [System.Management.Automation.PSCredential] $Credential)
    if ($null -ne $Credential) { $Password = $Credential.Password }
    if ($null -ne $Password) { $Params['password'] = ConvertFrom-HVSecureString $Password }
}

function Test-HVPlanWanted {
    # True when ShouldProcess will print (-WhatIf) or ask (-Confirm, or impact at or above
    # $ConfirmPreference): then the engine's own plan is worth fetching for the message.
    # Reads the calling cmdlet's preference variables through dynamic scope.
    [OutputType([bool])]
    param([System.Management.Automation.ConfirmImpact] $Impact = 'Medium')
    if ($WhatIfPreference) { return $true }
    if ([string]$ConfirmPreference -eq 'None') { return $false }
    [int]$Impact -ge [int][System.Management.Automation.ConfirmImpact]$ConfirmPreference
}

function Format-HVPlan {
    # The ShouldProcess description: a heading and the engine's plan lines.
    [CmdletBinding()]
    [OutputType([string])]
    param([string] $Heading, [object] $Plan)
    $lines = @($Plan | Where-Object { $null -ne $_ } | ForEach-Object { "  $_" })
    if ($lines.Count -eq 0) { return $Heading }
    ($Heading + ':' + [Environment]::NewLine + ($lines -join [Environment]::NewLine))
}
