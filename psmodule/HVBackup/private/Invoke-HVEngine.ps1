function Invoke-HVEngine {
    # Run one engine API method through the bridge and return its result. Progress messages
    # become Write-Progress (completed on every exit path), log messages Write-Verbose or
    # Write-Warning; an engine error is thrown as an exception carrying its code and target
    # (see New-HVErrorRecord). When the caller stops (Ctrl+C), the request is cancelled and
    # the engine's answer awaited, so it unwinds before the prompt returns.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)] [string] $Method,
        [hashtable] $Params = @{},
        [int] $ProgressId = 1,
        # Cancel the request after this long (for operations that run until cancelled).
        [int] $CancelAfterMs = 0
    )
    $engine = Get-HVEngine
    $script:HVEngineNextId++
    $id = [string]$script:HVEngineNextId
    $bars = @{}
    $done = $false
    try {
        Send-HVEngineLine -Engine $engine -Message @{ id = $id; method = $Method; params = $Params }
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $cancelSent = $false
        while ($true) {
            $timeout = -1
            if ($CancelAfterMs -gt 0 -and -not $cancelSent) { $timeout = [int][math]::Max(0, $CancelAfterMs - $clock.ElapsedMilliseconds) }
            $msg = Read-HVEngineMessage -Engine $engine -TimeoutMs $timeout
            if ($null -eq $msg) {
                Send-HVEngineLine -Engine $engine -Message @{ type = 'cancel'; id = $id }
                $cancelSent = $true
                continue
            }
            if ($msg.id -ne $id) { continue }   # late messages of an earlier, cancelled request
            switch ($msg.type) {
                'progress' { Write-HVEngineProgress -Message $msg -Bars $bars -BaseId $ProgressId }
                'log' { Write-HVEngineLog -Message $msg }
                'result' { $done = $true; return $msg.result }
                'error' { $done = $true; throw (New-HVEngineException -Code $msg.error.code -Message $msg.error.message -Target (Get-HVProperty $msg.error 'target') -Data (Get-HVProperty $msg.error 'data')) }
            }
        }
    } finally {
        if (-not $done) { Stop-HVEngineRequest -Engine $engine -Id $id }
        foreach ($barId in @($bars.Values)) {
            try { Write-Progress -Id $barId -Activity 'HVBackup' -Completed } catch { Write-Debug "progress: $_" }
        }
    }
}

function Stop-HVEngineRequest {
    # Cancel a request the caller abandoned and wait (bounded) for the engine to answer it.
    [CmdletBinding()]
    param([hashtable] $Engine, [string] $Id)
    try {
        if ($Engine.Process.HasExited) { return }
        Send-HVEngineLine -Engine $Engine -Message @{ type = 'cancel'; id = $Id }
        $watch = [System.Diagnostics.Stopwatch]::StartNew()
        while ($watch.ElapsedMilliseconds -lt 30000) {
            $msg = Read-HVEngineMessage -Engine $Engine -TimeoutMs 1000
            if ($null -ne $msg -and $msg.id -eq $Id -and ($msg.type -eq 'result' -or $msg.type -eq 'error')) { return }
        }
    } catch {
        Write-Debug "cancelling engine request ${Id}: $_"
    }
}

function Write-HVEngineProgress {
    [CmdletBinding()]
    param([object] $Message, [hashtable] $Bars, [int] $BaseId)
    $activity = [string](Get-HVProperty $Message 'activity')
    $target = [string](Get-HVProperty $Message 'target')
    $key = "$activity|$target"
    if (-not $Bars.ContainsKey($key)) { $Bars[$key] = $BaseId + $Bars.Count }
    $barId = $Bars[$key]
    $title = $activity
    if ($target) { $title = "$activity $target" }
    if (Get-HVProperty $Message 'completed') {
        Write-Progress -Id $barId -Activity $title -Completed
        $Bars.Remove($key)
        return
    }
    $status = [string](Get-HVProperty $Message 'status')
    if (-not $status) { $status = 'working' }
    $done = Get-HVProperty $Message 'done'
    $total = Get-HVProperty $Message 'total'
    $percent = -1
    if ($null -ne $done -and $null -ne $total -and [double]$total -gt 0) {
        $percent = [int][math]::Min(100, [math]::Floor(100 * [double]$done / [double]$total))
    }
    Write-Progress -Id $barId -Activity $title -Status $status -PercentComplete $percent
}

function Write-HVEngineLog {
    [CmdletBinding()]
    param([object] $Message)
    $text = [string]$Message.message
    $target = Get-HVProperty $Message 'target'
    if ($target) { $text = "[$target] $text" }
    if ($Message.level -eq 'warning') { Write-Warning $text } else { Write-Verbose $text }
}

function Get-HVProperty {
    # A property of a JSON object, or $null when absent (StrictMode forbids reading missing ones).
    param([object] $InputObject, [string] $Name)
    if ($null -eq $InputObject) { return $null }
    $p = $InputObject.PSObject.Properties[$Name]
    if ($null -eq $p) { return $null }
    $p.Value
}
